package table

import "testing"

func TestSet(t *testing.T) {
	var tk Set
	in := []uint16{0, 1, 63, 64, 65, 2047, Buckets - 1}
	for _, b := range in {
		tk.Add(b)
	}
	tk.Add(Buckets) // out of range: ignored
	tk.Add(65535)
	for b := range Buckets + 10 {
		want := false
		for _, x := range in {
			want = want || int(x) == b
		}
		if got := tk.Has(uint16(b)); got != want {
			t.Errorf("Has(%d) = %v, want %v", b, got, want)
		}
	}
	if tk.Len() != len(in) {
		t.Errorf("Len() = %d, want %d", tk.Len(), len(in))
	}
	var none *Set
	if none.Has(0) || none.Len() != 0 {
		t.Error("a nil Set must be empty")
	}
}

func TestUnion(t *testing.T) {
	var a, b Set
	a.Add(1)
	b.Add(4095)
	u := Union(&a, &b)
	if !u.Has(1) || !u.Has(4095) || u.Len() != 2 {
		t.Fatalf("Union = %d buckets, want 1 and 4095", u.Len())
	}
	if Union(nil, nil).Len() != 0 || Union(&a, nil).Len() != 1 {
		t.Fatal("Union with nil sets")
	}
}
