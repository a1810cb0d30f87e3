package main

import (
	"testing"

	"github.com/banyanhq/banyan/diff"
)

// TestFormatDifference_moreRows: the summary of row differences past the
// cap reads as a count, not as a cell changed from NULL to NULL.
func TestFormatDifference_moreRows(t *testing.T) {
	got := formatDifference(diff.Difference{Path: "rows", Kind: diff.More, Lines: 900})
	if want := "rows: … and 900 more row differences"; got != want {
		t.Errorf("formatDifference = %q, want %q", got, want)
	}
}
