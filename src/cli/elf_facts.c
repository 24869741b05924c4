/* Reading the few facts nestls run needs from an ELF file: see
 * elf_facts.h. Every offset and size comes from the file, so each read is
 * bounds-checked by pread's answer and SHSTRTAB_MAX. */
#include <elf.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/elf_facts.h"

#define SHSTRTAB_MAX (1u << 20) /* larger is not a real section name table */

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_DATA ELFDATA2LSB
#else
#define NATIVE_DATA ELFDATA2MSB
#endif

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    if (off > (uint64_t)INT64_MAX)
        return -1;
    return pread(fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

/* Class, byte order and machine, as raw bytes: two files can be compared
 * without decoding either. */
int nl_elf_ident(int fd, unsigned char out[4])
{
    unsigned char h[EI_NIDENT + 4];
    if (read_at(fd, h, sizeof(h), 0) != 0 || memcmp(h, ELFMAG, SELFMAG) != 0)
        return -1;
    out[0] = h[EI_CLASS];
    out[1] = h[EI_DATA];
    out[2] = h[EI_NIDENT + 2]; /* e_machine follows e_type */
    out[3] = h[EI_NIDENT + 3];
    return 0;
}

/* A native executable's header. -1 for anything else (a core file, an
 * object file, a damaged header): the kernel decides what to make of it. */
int nl_elf_header(int fd, struct nl_elf *e)
{
    union {
        Elf32_Ehdr h32;
        Elf64_Ehdr h64;
    } h;
    if (read_at(fd, &h, sizeof(h.h32), 0) != 0 || h.h32.e_ident[EI_DATA] != NATIVE_DATA)
        return -1;
    e->fd = fd;
    e->is64 = h.h32.e_ident[EI_CLASS] == ELFCLASS64;
    unsigned type, phentsize, shentsize;
    if (e->is64) {
        if (read_at(fd, &h, sizeof(h.h64), 0) != 0)
            return -1;
        type = h.h64.e_type, e->phoff = h.h64.e_phoff, e->shoff = h.h64.e_shoff;
        e->phnum = h.h64.e_phnum, e->shnum = h.h64.e_shnum, e->shstrndx = h.h64.e_shstrndx;
        phentsize = h.h64.e_phentsize, shentsize = h.h64.e_shentsize;
    } else {
        type = h.h32.e_type, e->phoff = h.h32.e_phoff, e->shoff = h.h32.e_shoff;
        e->phnum = h.h32.e_phnum, e->shnum = h.h32.e_shnum, e->shstrndx = h.h32.e_shstrndx;
        phentsize = h.h32.e_phentsize, shentsize = h.h32.e_shentsize;
    }
    size_t ph = e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    size_t sh = e->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
    if ((type != ET_EXEC && type != ET_DYN) || e->phnum == 0 || phentsize != ph)
        return -1;
    /* No usable section headers only means no sections to look at. */
    if (e->shoff == 0 || shentsize != sh || e->shstrndx >= e->shnum)
        e->shnum = 0;
    return 0;
}

/* Program header i's type, file offset and size. */
static int segment(const struct nl_elf *e, unsigned i, uint32_t *type, uint64_t *off, uint64_t *size)
{
    if (e->is64) {
        Elf64_Phdr p;
        if (read_at(e->fd, &p, sizeof(p), e->phoff + i * sizeof(p)) != 0)
            return -1;
        *type = p.p_type, *off = p.p_offset, *size = p.p_filesz;
    } else {
        Elf32_Phdr p;
        if (read_at(e->fd, &p, sizeof(p), e->phoff + i * sizeof(p)) != 0)
            return -1;
        *type = p.p_type, *off = p.p_offset, *size = p.p_filesz;
    }
    return 0;
}

/* The PT_INTERP program header's file offset and size, if there is one. */
static bool interp(const struct nl_elf *e, uint64_t *off, uint64_t *size)
{
    for (unsigned i = 0; i < e->phnum; i++) {
        uint32_t type;
        if (segment(e, i, &type, off, size) == 0 && type == PT_INTERP)
            return true;
    }
    return false;
}

bool nl_elf_interp(const struct nl_elf *e, char *path, size_t len)
{
    uint64_t off, size;
    if (!interp(e, &off, &size))
        return false;
    if (len > 0) {
        path[0] = '\0';
        if (size > 0 && size < len && read_at(e->fd, path, size, off) == 0)
            path[size] = '\0';
    }
    return true;
}

/* Section i's name offset, file offset and size. */
static int section(const struct nl_elf *e, unsigned i, uint32_t *name, uint64_t *off, uint64_t *size)
{
    if (e->is64) {
        Elf64_Shdr s;
        if (read_at(e->fd, &s, sizeof(s), e->shoff + i * sizeof(s)) != 0)
            return -1;
        *name = s.sh_name, *off = s.sh_offset, *size = s.sh_size;
    } else {
        Elf32_Shdr s;
        if (read_at(e->fd, &s, sizeof(s), e->shoff + i * sizeof(s)) != 0)
            return -1;
        *name = s.sh_name, *off = s.sh_offset, *size = s.sh_size;
    }
    return 0;
}

/* A section of this name, read from the section name table names. */
static bool has_section(const struct nl_elf *e, const char *names, uint64_t names_size,
                        const char *wanted)
{
    for (unsigned i = 0; i < e->shnum; i++) {
        uint32_t name;
        uint64_t off, size;
        if (section(e, i, &name, &off, &size) == 0 && name < names_size &&
            strcmp(names + name, wanted) == 0)
            return true;
    }
    return false;
}

#define NOTES_MAX (1u << 16) /* larger is not a real note segment */
#define GO_BUILDID_NOTE 4    /* the Go linker's note type, owner "Go" */

static size_t align4(uint32_t n)
{
    return ((size_t)n + 3) & ~(size_t)3;
}

/* Whether the notes (a PT_NOTE segment's bytes) hold Go's build ID. */
static bool holds_go_note(const unsigned char *notes, size_t size)
{
    size_t pos = 0;
    while (pos + 12 <= size) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, notes + pos, 4);
        memcpy(&descsz, notes + pos + 4, 4);
        memcpy(&type, notes + pos + 8, 4);
        /* The Go linker writes the owner as "Go\0\0" (namesz 4); "Go\0"
         * (namesz 3) is the same owner as other tools would write it. */
        if ((namesz == 3 || namesz == 4) && type == GO_BUILDID_NOTE && pos + 12 + namesz <= size &&
            memcmp(notes + pos + 12, "Go", 3) == 0 && (namesz == 3 || notes[pos + 15] == '\0'))
            return true;
        size_t next = pos + 12 + align4(namesz) + align4(descsz);
        if (next <= pos)
            break;
        pos = next;
    }
    return false;
}

/* The note is found through the program headers: it stays when the
 * section headers are stripped (sstrip). */
static bool has_go_note(const struct nl_elf *e)
{
    for (unsigned i = 0; i < e->phnum; i++) {
        uint32_t type;
        uint64_t off, size;
        if (segment(e, i, &type, &off, &size) != 0 || type != PT_NOTE || size == 0 ||
            size > NOTES_MAX)
            continue;
        unsigned char *notes = malloc(size);
        bool go = notes != NULL && read_at(e->fd, notes, size, off) == 0 && holds_go_note(notes, size);
        free(notes);
        if (go)
            return true;
    }
    return false;
}

/* The Go toolchain marks every binary it links with these sections, and
 * strip keeps them (both are loaded at run time); its build-ID note is
 * also in a PT_NOTE segment, which stripping the section headers keeps. */
bool nl_elf_is_go(const struct nl_elf *e)
{
    if (has_go_note(e))
        return true;
    uint32_t name;
    uint64_t off, size;
    if (e->shnum == 0 || section(e, e->shstrndx, &name, &off, &size) != 0 || size == 0 ||
        size > SHSTRTAB_MAX)
        return false;
    char *names = malloc(size + 1);
    bool go = false;
    if (names != NULL && read_at(e->fd, names, size, off) == 0) {
        names[size] = '\0';
        go = has_section(e, names, size, ".go.buildinfo") ||
             has_section(e, names, size, ".note.go.buildid");
    }
    free(names);
    return go;
}

