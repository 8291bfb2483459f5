/* Network interfaces inside the sandbox: only loopback is ours to bring up; slirp4netns
 * configures its tap from outside. */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "init.h"

int cws_netif_loopback_up(struct cws_error *err)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cws_error_set(err, CWS_E_INTERNAL, "socket: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    int r = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        r = cws_error_set(err, CWS_E_INTERNAL, "get flags of lo: %s", strerror(errno));
    } else if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
            r = cws_error_set(err, CWS_E_INTERNAL, "bring lo up: %s", strerror(errno));
    }
    close(fd);
    return r;
}
