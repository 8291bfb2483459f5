/* Capabilities of the processes a sandbox runs. As root there is no user namespace between
 * them and the host, and unprivileged they would hold every capability of theirs: either way
 * they keep only the set container runtimes grant by default (no CAP_SYS_ADMIN, so no
 * mounting or unmounting what hides the host; no CAP_SYS_PTRACE, so init's host-side fds
 * stay out of reach; no CAP_MKNOD, CAP_NET_ADMIN, CAP_SYS_MODULE ...). */
#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"

#define KEEP(c) (1ull << (c))
static const unsigned long long keep_caps =
    KEEP(CAP_CHOWN) | KEEP(CAP_DAC_OVERRIDE) | KEEP(CAP_FOWNER) | KEEP(CAP_FSETID) |
    KEEP(CAP_KILL) | KEEP(CAP_SETGID) | KEEP(CAP_SETUID) | KEEP(CAP_SETPCAP) |
    KEEP(CAP_NET_BIND_SERVICE) | KEEP(CAP_NET_RAW) | KEEP(CAP_SYS_CHROOT) | KEEP(CAP_AUDIT_WRITE) |
    KEEP(CAP_SETFCAP);

int cws_caps_drop_for_child(void)
{
    /* The bounding set is what an exec as uid 0 gets back; drop from it first (needs
     * CAP_SETPCAP, which we still have), until the kernel says the numbers end. */
    for (int c = 0; c < 64; c++) {
        if (keep_caps & (1ull << c))
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break;
            return -errno;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    struct __user_cap_header_struct head = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2] = {{0}};
    for (int i = 0; i < 2; i++) {
        data[i].effective = data[i].permitted = (unsigned)(keep_caps >> (32 * i));
    }
    if (syscall(SYS_capset, &head, data) < 0)
        return -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}
