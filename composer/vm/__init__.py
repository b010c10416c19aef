"""Boot validation: firmware selection, accelerator choice, swtpm, QEMU, serial parsing, verdict."""
