// Package sshsig checks OpenSSH signatures of the kind `ssh-keygen -Y
// sign` makes (the SSHSIG format of OpenSSH's PROTOCOL.sshsig), so that a
// customer's consent can be an SSH key of theirs signing the exact text of
// what they agree to, and anyone holding the text, the signature and the
// customer's public key can check it later with `ssh-keygen -Y verify`.
//
// Sign exists for tests and for tools that hold an ssh.Signer; customers
// sign with ssh-keygen, which also reaches agents and hardware keys.
package sshsig
