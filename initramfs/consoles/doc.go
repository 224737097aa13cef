// Package consoles finds every console a machine has and writes the
// agent's messages to all of them: the kernel's consoles (VGA and the
// serial port of the command line) and the serial port the firmware names
// in its ACPI SPCR table, which is what a BMC's serial-over-LAN shows
// (often COM2 on servers, where console=ttyS0 says nothing). Linux on x86
// reads SPCR for earlycon only, so without this the remote hands at an
// IPMI console would see a silent machine.
package consoles
