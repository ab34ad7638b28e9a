/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher's request parsing (supervisor/launch.c): the fuzzer chooses a datagram and
 * the descriptors that travel with it (how many, of which kinds), sends them over a real
 * SOCK_SEQPACKET pair, and launch_request_recv() reads them as the launcher does. Also the
 * exit record that launch_read_exit() reads from a pipe. Checked: only an exact request
 * with the right descriptors is accepted, every descriptor is either handed over
 * (close-on-exec) or closed, none leaks.
 *
 * Input: byte 0 = number of descriptors (low 3 bits, up to 7) and whether the rest is also
 * the exit record; byte 1 = their kinds, 2 bits each (socket, pipe, regular file, eventfd);
 * then the datagram. */

#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "launch.h"
#include "macro.h"

#define MAX_SEND_FDS 7

typedef struct Request {
        uint32_t magic;
        uint32_t op;
        uint32_t n_fds;
} Request;

#define FD_PROBE_MAX 1024

/* Which of the first FD_PROBE_MAX descriptors are open. */
static void open_fds(bool ret[FD_PROBE_MAX]) {
        for (int fd = 0; fd < FD_PROBE_MAX; fd++)
                ret[fd] = fcntl(fd, F_GETFD) >= 0;
}

static int make_fd(unsigned kind, int *extra) {
        int p[2], sv[2];

        *extra = -1;
        switch (kind) {
        case 0:
                FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
                *extra = sv[1];
                return sv[0];
        case 1:
                if (pipe2(p, O_CLOEXEC) < 0) {
                        fprintf(stderr, "pipe2: %m\n");
                        abort();
                }
                *extra = p[0];
                return p[1];
        case 2:
                return open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
        default:
                return eventfd(0, EFD_CLOEXEC);
        }
}

static bool fd_is(int fd, mode_t type) {
        struct stat st;
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

static void fuzz_request(const uint8_t *data, size_t size) {
        unsigned n_send = data[0] & 7, kinds = data[1];
        int send_fds[MAX_SEND_FDS], extra[MAX_SEND_FDS], fds[LAUNCH_FDS_MAX], sv[2], r;
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(sizeof(int) * MAX_SEND_FDS)];
        } control = {};
        struct iovec iov = { .iov_base = (void *) (data + 2), .iov_len = size - 2 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        Request req = {};

        FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        for (unsigned i = 0; i < n_send; i++)
                send_fds[i] = make_fd((kinds >> (2 * (i % 4))) & 3, &extra[i]);
        if (n_send > 0) {
                struct cmsghdr *c;
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_send);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_send);
                memcpy(CMSG_DATA(c), send_fds, sizeof(int) * n_send);
        }
        r = (int) sendmsg(sv[0], &mh, MSG_NOSIGNAL);
        if (r != (int) (size - 2)) {
                fprintf(stderr, "sendmsg: %d %m\n", r);
                abort();
        }
        for (unsigned i = 0; i < n_send; i++) {
                close(send_fds[i]);
                if (extra[i] >= 0)
                        close(extra[i]);
        }

        r = launch_request_recv(sv[1], fds);
        if (size - 2 >= sizeof req)
                memcpy(&req, data + 2, sizeof req);
        /* Accepted exactly when it is what launch_qemu() sends (op 1, or 5 for an incoming
         * migration's QEMU). */
        FUZZ_ASSERT((r > 0) == (size - 2 == sizeof req && req.magic == 0x766d7375U && (req.op == 1U || req.op == 5U) &&
                                req.n_fds == n_send && (n_send == 1 || n_send == 2) && (kinds & 3) == 1 &&
                                (n_send == 1 || ((kinds >> 2) & 3) == 0)));
        if (r > 0) {
                FUZZ_ASSERT(size - 2 == sizeof req && req.magic == 0x766d7375U && (req.op == 1U || req.op == 5U));
                FUZZ_ASSERT(IN_SET(r, 1, 2) && (unsigned) r == n_send && req.n_fds == n_send);
                FUZZ_ASSERT(fd_is(fds[0], S_IFIFO));
                FUZZ_ASSERT(r == 1 || fd_is(fds[1], S_IFSOCK));
                for (int i = 0; i < r; i++) {
                        FUZZ_ASSERT(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
                        close(fds[i]);
                }
        } else if (r == 0)
                FUZZ_ASSERT(size == 2 && n_send == 0); /* an empty datagram reads like the end */
        else
                FUZZ_ASSERT(IN_SET(r, -EBADMSG, -EAGAIN));

        /* Nothing else is there: one request, one datagram. */
        FUZZ_ASSERT(launch_request_recv(sv[1], fds) == -EAGAIN);
        close(sv[0]);
        FUZZ_ASSERT(launch_request_recv(sv[1], fds) == 0);
        close(sv[1]);
}

static void fuzz_exit_record(const uint8_t *data, size_t size) {
        siginfo_t si = {};
        int p[2], r;

        FUZZ_ASSERT(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
        if (size > 0)
                FUZZ_ASSERT(write(p[1], data, size > 4096 ? 4096 : size) > 0);
        close(p[1]);
        r = launch_read_exit(p[0], &si);
        if (r == 1)
                FUZZ_ASSERT(IN_SET(si.si_code, CLD_EXITED, CLD_KILLED, CLD_DUMPED));
        else
                FUZZ_ASSERT(r == -EBADMSG);
        close(p[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool before[FD_PROBE_MAX], after[FD_PROBE_MAX];

        if (size < 2 || size > 65536)
                return 0;
        open_fds(before);
        fuzz_request(data, size);
        if (data[0] & 0x80)
                fuzz_exit_record(data + 2, size - 2);
        open_fds(after);
        FUZZ_ASSERT(memcmp(before, after, sizeof before) == 0); /* no descriptor leaked */
        return 0;
}
