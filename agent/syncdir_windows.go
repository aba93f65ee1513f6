package agent

// syncDir is a no-op on Windows: NTFS journals the rename itself and a
// directory handle cannot be flushed like a file.
func syncDir(string) error { return nil }
