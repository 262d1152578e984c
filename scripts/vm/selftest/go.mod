module soulbox-vm-selftest

go 1.22
