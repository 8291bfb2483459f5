/* The instructions the runtime leaves for cwsandbox-init in the sandbox directory: what to
 * mount, what to run and which files to write. Written once by the server before init
 * starts, read once by init; msgpack on disk so that both sides share the codec.
 */
#ifndef CWS_INIT_SPEC_H
#define CWS_INIT_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cws_error.h"

struct cws_init_file {
    char *path; /* absolute, inside the sandbox */
    uint8_t *data;
    size_t len;
};

struct cws_init_spec {
    char *id;       /* also the hostname */
    char **argv;    /* NULL-terminated */
    char **env;     /* NULL-terminated, "KEY=VALUE" */
    char *cwd;      /* inside, never NULL after reading ("/" by default) */
    char *lower;    /* the overlay's lower directory on the host ("/" for the host root) */
    bool host_root; /* lower is the host's root: hide home directories and credentials */
    bool userns;    /* unprivileged: build the root from one overlay per top-level directory */
    bool wait_go;   /* wait for "go" on the sync socket before running the main command */
    bool egress;    /* a tap with egress will appear: write resolv.conf for it */
    char **hidden;  /* host paths hidden behind empty tmpfs (NULL-terminated) */
    struct cws_init_file *files;
    size_t n_files;
};

/* Write spec as CWS_SB_SPEC in the directory dirfd (atomically). */
int cws_init_spec_write(int dirfd, const struct cws_init_spec *spec, struct cws_error *err);

/* Read CWS_SB_SPEC from dirfd. The caller frees *ret with cws_init_spec_free(). */
int cws_init_spec_read(int dirfd, struct cws_init_spec **ret, struct cws_error *err);

/* Free a spec returned by cws_init_spec_read(). Accepts NULL. */
void cws_init_spec_free(struct cws_init_spec *spec);

#endif
