package vm

import (
	"bytes"
	"testing"
)

func TestVLANFrames(t *testing.T) {
	v := &VLAN{Tag: 120}
	dst, src := bytes.Repeat([]byte{0xff}, 6), []byte{0x52, 0x54, 0, 1, 2, 3}
	plain := append(append(append([]byte{}, dst...), src...), 0x08, 0x00, 'i', 'p')
	tagged := v.addTag(plain)
	want := append(append(append([]byte{}, dst...), src...), 0x81, 0x00, 0x00, 120, 0x08, 0x00, 'i', 'p')
	if !bytes.Equal(tagged, want) {
		t.Fatalf("addTag = % x, want % x", tagged, want)
	}
	if got := v.untag(tagged); !bytes.Equal(got, plain) {
		t.Errorf("untag = % x, want % x", got, plain)
	}
	other := append([]byte{}, tagged...)
	other[15] = 121 // VLAN 121
	for name, f := range map[string][]byte{"untagged": plain, "other VLAN": other, "short": tagged[:15]} {
		if got := v.untag(f); got != nil {
			t.Errorf("untag(%s) = % x, want nothing", name, got)
		}
	}
	// The priority bits are not part of the tag.
	prio := append([]byte{}, tagged...)
	prio[14] |= 0xe0
	if got := v.untag(prio); !bytes.Equal(got, plain) {
		t.Errorf("untag(priority 7) = % x", got)
	}
}
