/* The facts nestls run needs from an ELF file (reach.c): read with
 * pread, bounded, never trusting the file's own offsets and sizes. */
#ifndef NESTLS_ELF_FACTS_H
#define NESTLS_ELF_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What nestls run needs of an ELF file, whatever its class. */
struct nl_elf {
    int fd;
    bool is64;
    uint64_t phoff, shoff;
    unsigned phnum, shnum, shstrndx;
};

/* Class, byte order and machine, as raw bytes: two files can be compared
 * without decoding either. 0, or -1 when fd is not ELF. */
int nl_elf_ident(int fd, unsigned char out[4]);
/* A native executable's header (ET_EXEC or ET_DYN). -1 for anything else
 * (a core file, an object file, a damaged header). */
int nl_elf_header(int fd, struct nl_elf *e);
/* Whether it has a PT_INTERP (a loader runs it); its path into path (len
 * bytes, "" when unreadable) unless len is 0. */
bool nl_elf_interp(const struct nl_elf *e, char *path, size_t len);
/* Whether the Go toolchain linked it (.go.buildinfo, .note.go.buildid). */
bool nl_elf_is_go(const struct nl_elf *e);

#endif
