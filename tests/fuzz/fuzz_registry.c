/* Fuzz cwsandboxd's registry loader: whatever is on disk (torn, corrupt, hostile), loading
 * must neither crash nor leak, and must never stop the daemon. The input is written as the
 * registry file (after the magic unless it brings its own), loaded into a bare daemon state,
 * which is then written back as a snapshot on close; that snapshot must load again to exactly
 * the same sessions, sandboxes and pending creates, without being called corrupt.
 */
#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "registry.h"
#include "sandbox_table.h"
#include "session.h"

#define MAGIC     "CWSDREG1"
#define MAGIC_LEN 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static struct event_base *base;

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* A tmpfs when there is one: every load ends with an fsync'ed snapshot. */
static void setup_once(void)
{
    if (base)
        return;
    const char *parent = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/fuzz-registry-XXXXXX", parent);
    check(mkdtemp(dir) != NULL);
    check((base = event_base_new()) != NULL);
    cws_log_set_level(CWS_LOG_ERROR);
}

/* Remove what a load may leave beside the registry (moved-aside copies, a snapshot). */
static void clear_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[128];
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
}

static void write_registry(const uint8_t *data, size_t size)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/registry", dir);
    FILE *f = fopen(path, "wb");
    check(f != NULL);
    if (size < MAGIC_LEN || memcmp(data, MAGIC, MAGIC_LEN) != 0)
        fwrite(MAGIC, 1, MAGIC_LEN, f);
    fwrite(data, 1, size, f);
    check(fclose(f) == 0);
}

struct counts {
    size_t sessions, sandboxes, pending;
};

static struct counts count(const struct cwsd *d)
{
    struct counts c = {cwsd_session_count(d), d->n_sandboxes, 0};
    for (const struct cwsd_pending *p = d->pending; p; p = p->next)
        c.pending++;
    return c;
}

/* Load the registry into a fresh state, count it, and close (which writes the snapshot). */
static struct counts load_and_close(void)
{
    struct cwsd d;
    struct cws_error err;
    memset(&d, 0, sizeof(d));
    d.base = base;
    d.cfg.state_dir = dir;
    check(cwsd_registry_open(&d, &err) == 0);
    struct counts c = count(&d);
    cwsd_registry_close(&d);
    cwsd_sessions_free(&d);
    cwsd_pending_free_all(&d);
    cwsd_sandbox_table_free(&d);
    return c;
}

static void remove_aside(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[128];
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, "registry.corrupt-", 17) == 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
}

static bool moved_aside(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool found = false;
    while (d && (de = readdir(d)))
        found = found || strncmp(de->d_name, "registry.corrupt-", 17) == 0;
    if (d)
        closedir(d);
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    clear_dir();
    write_registry(data, size);
    struct counts first = load_and_close();
    /* The snapshot of what was read must read back the same, and cleanly. */
    remove_aside();
    struct counts again = load_and_close();
    check(!moved_aside());
    check(first.sessions == again.sessions && first.sandboxes == again.sandboxes &&
          first.pending == again.pending);
    return 0;
}
