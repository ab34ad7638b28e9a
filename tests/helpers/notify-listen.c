/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* notify-listen PATH SECONDS: plays the service manager's notification socket.
 * Binds a datagram socket at PATH and prints every sd_notify() message it gets,
 * one field per line, until SECONDS have passed. */

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "macro.h"

int main(int argc, char *argv[]) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        uint64_t secs, deadline;
        char buf[4096];

        if (argc != 3 || safe_atou64(argv[2], &secs) < 0 || strlen(argv[1]) >= sizeof sa.sun_path) {
                fprintf(stderr, "usage: notify-listen PATH SECONDS\n");
                return 2;
        }
        strcpy(sa.sun_path, argv[1]);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                perror("notify-listen");
                return 1;
        }
        printf("LISTENING\n");
        fflush(stdout);
        deadline = now_usec(CLOCK_MONOTONIC) + secs * USEC_PER_SEC;
        for (;;) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;

                if (now >= deadline)
                        break;
                if (poll(&p, 1, (int) ((deadline - now) / USEC_PER_MSEC) + 1) <= 0)
                        continue;
                n = recv(fd, buf, sizeof buf - 1, 0);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                printf("%s%s", buf, buf[n - 1] == '\n' ? "" : "\n");
                fflush(stdout);
        }
        return 0;
}
