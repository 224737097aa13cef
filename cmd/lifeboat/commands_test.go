package main

import (
	"slices"
	"strings"
	"testing"
)

// TestFind: the words people type find one command of the table (aliases
// and plurals too), and a group without a command says what it offers.
func TestFind(t *testing.T) {
	for _, tt := range []struct {
		args []string
		path string // or, when it starts with "!", a part of the error
		rest []string
	}{
		{[]string{"host", "add", "web1", "--mac", "m"}, "host add", []string{"web1", "--mac", "m"}},
		{[]string{"hosts", "ls"}, "host list", []string{}},
		{[]string{"customer", "webhooks", "rm", "acme", "w-1"}, "customer webhook remove", []string{"acme", "w-1"}},
		{[]string{"customer", "policy", "acme", "shell", "notify"}, "customer policy", []string{"acme", "shell", "notify"}},
		{[]string{"events", "--follow"}, "events", []string{"--follow"}},
		{[]string{"host", "ls", "ls"}, "host list", []string{"ls"}}, // an argument is not an alias
		{[]string{"host", "frob"}, `!host "frob": want list, show, hardware, add, set, remove, reset or import`, nil},
		{[]string{"host"}, `!host "": want list, show`, nil},
		{[]string{"customer", "webhook", "frob"}, `!customer webhook "frob": want add, list or remove`, nil},
		{[]string{"frobnicate"}, `!unknown command "frobnicate"`, nil},
	} {
		c, rest, err := find(tt.args)
		if want, ok := strings.CutPrefix(tt.path, "!"); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("find(%q) = %v, want an error with %q", tt.args, err, want)
			}
			continue
		}
		if err != nil || c.path != tt.path || !slices.Equal(rest, tt.rest) {
			t.Errorf("find(%q) = %v %q %v, want %s %q", tt.args, c, rest, err, tt.path, tt.rest)
		}
	}
}

// TestUsageListsEveryCommand: the help is made from the table, each
// command once.
func TestUsageListsEveryCommand(t *testing.T) {
	u := usage()
	seen := map[string]bool{}
	for _, c := range commands {
		if seen[c.path] {
			t.Errorf("%q is in the table twice", c.path)
		}
		seen[c.path] = true
		if strings.Count(u, "  "+c.path+" ")+strings.Count(u, "  "+c.path+"\n") == 0 {
			t.Errorf("usage lacks %q", c.path)
		}
	}
}
