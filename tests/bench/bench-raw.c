/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The baselines: a plain blocking C client on QEMU's own QMP socket and on the guest
 * agent's socket, and a QEMU launched with exactly the supervisor's argv. */

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "config.h"
#include "launch.h"

/* Reads are at most this large, like the supervisor's agent client for long lines. */
#define READ_CHUNK (1024U * 1024U)

/* ---- framing ---- */

static int write_all(int fd, const void *data, size_t len) {
        const char *p = data;

        while (len > 0) {
                ssize_t k = write(fd, p, len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                                if (poll(&pfd, 1, 60000) <= 0)
                                        return -ETIMEDOUT;
                                continue;
                        }
                        return -errno;
                }
                p += k;
                len -= (size_t) k;
        }
        return 0;
}

void rawline_discard(RawLineBuf *b) {
        b->start = b->scan = b->len = 0;
}

void rawline_free(RawLineBuf *b) {
        free(b->buf);
        safe_close(b->fd);
        *b = (RawLineBuf) { .fd = -1 };
}

int rawline_next(RawLineBuf *b, bool ff_resets, uint64_t timeout_usec, char **ret_line, size_t *ret_len) {
        uint64_t deadline = now_ns() + (timeout_usec ?: 60 * USEC_PER_SEC) * 1000;

        if (b->start > 0) {
                memmove(b->buf, b->buf + b->start, b->len - b->start);
                b->len -= b->start;
                b->scan -= b->start;
                b->start = 0;
        }
        for (;;) {
                while (b->scan < b->len) {
                        char *p = b->buf + b->scan;
                        size_t n = b->len - b->scan;
                        char *nl = memchr(p, '\n', n);
                        size_t span = nl ? (size_t) (nl - p) : n;
                        char *ff = ff_resets ? memchr(p, 0xFF, span) : NULL;

                        if (ff) {
                                b->start = b->scan = (size_t) (ff - b->buf) + 1;
                                continue;
                        }
                        if (!nl) {
                                b->scan = b->len;
                                break;
                        }
                        *nl = '\0';
                        *ret_line = b->buf + b->start;
                        *ret_len = (size_t) (nl - (b->buf + b->start));
                        b->start = b->scan = (size_t) (nl - b->buf) + 1;
                        return 0;
                }
                if (b->start > 0) {
                        memmove(b->buf, b->buf + b->start, b->len - b->start);
                        b->len -= b->start;
                        b->scan -= b->start;
                        b->start = 0;
                }
                if (b->cap - b->len < READ_CHUNK / 16) {
                        size_t cap = b->cap ? b->cap * 2 : 64 * 1024;
                        char *nb = realloc(b->buf, cap + 1);
                        if (!nb)
                                return -ENOMEM;
                        b->buf = nb;
                        b->cap = cap;
                }
                size_t want = b->cap - b->len;
                if (want > READ_CHUNK)
                        want = READ_CHUNK;
                ssize_t k = read(b->fd, b->buf + b->len, want);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        uint64_t now = now_ns();
                        if (now >= deadline)
                                return -ETIMEDOUT;
                        struct pollfd pfd = { .fd = b->fd, .events = POLLIN };
                        (void) poll(&pfd, 1, (int) ((deadline - now) / 1000000) + 1);
                        continue;
                }
                if (k == 0)
                        return -ECONNRESET;
                b->len += (size_t) k;
        }
}

/* ---- QMP ---- */

static int raw_qmp_read_reply(RawQmp *q, uint64_t id, json_t **ret) {
        for (;;) {
                json_auto_t *v = NULL;
                json_t *jid, *ret_v, *err;
                char *line;
                size_t len;
                int r;

                r = rawline_next(&q->in, false, 30 * USEC_PER_SEC, &line, &len);
                if (r < 0)
                        return r;
                v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
                if (!json_is_object(v))
                        return -EPROTO;
                if (json_object_get(v, "event"))
                        continue;
                jid = json_object_get(v, "id");
                if (!json_is_integer(jid) || (uint64_t) json_integer_value(jid) != id)
                        return -EPROTO;
                ret_v = json_object_get(v, "return");
                if (ret_v) {
                        if (ret)
                                *ret = json_incref(ret_v);
                        return 0;
                }
                err = json_object_get(v, "error");
                return json_is_object(err) ? -EREMOTEIO : -EPROTO;
        }
}

int raw_qmp_command(RawQmp *q, const char *execute, json_t *arguments, json_t **ret) {
        _cleanup_free_ char *text = NULL;
        json_auto_t *cmd = NULL;
        uint64_t id = ++q->next_id;
        size_t len;
        int r;

        /* The same message the supervisor's client writes: {"execute","arguments","id"}. */
        cmd = arguments ? json_pack("{s:s,s:O,s:I}", "execute", execute, "arguments", arguments, "id", (json_int_t) id)
                        : json_pack("{s:s,s:I}", "execute", execute, "id", (json_int_t) id);
        if (!cmd)
                return -ENOMEM;
        text = json_dumps(cmd, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        text[len] = '\n'; /* json_dumps' NUL becomes the newline: one write */
        r = write_all(q->in.fd, text, len + 1);
        text[len] = '\0';
        if (r < 0)
                return r;
        return raw_qmp_read_reply(q, id, ret);
}

int raw_qmp_command_fd(RawQmp *q, const char *execute, json_t *arguments, int fd, json_t **ret) {
        _cleanup_free_ char *text = NULL;
        json_auto_t *cmd = NULL;
        uint64_t id = ++q->next_id;
        union {
                struct cmsghdr h;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof control };
        size_t len;
        ssize_t k;

        cmd = json_pack("{s:s,s:O,s:I}", "execute", execute, "arguments", arguments, "id", (json_int_t) id);
        if (!cmd)
                return -ENOMEM;
        text = json_dumps(cmd, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        text[len] = '\n';
        /* The descriptor travels with the command's first byte, as the supervisor sends it. */
        iov = (struct iovec) { .iov_base = text, .iov_len = 1 };
        control.h.cmsg_level = SOL_SOCKET;
        control.h.cmsg_type = SCM_RIGHTS;
        control.h.cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(&control.h), &fd, sizeof(int));
        do
                k = sendmsg(q->in.fd, &mh, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        k = write_all(q->in.fd, text + 1, len);
        text[len] = '\0';
        if (k < 0)
                return (int) k;
        return raw_qmp_read_reply(q, id, ret);
}

int raw_qmp_handshake(RawQmp *q, int fd) {
        json_auto_t *greeting = NULL, *ret = NULL;
        char *line;
        size_t len;
        int r;

        /* Blocking reads (the leanest client: one read per reply), bounded by a receive timeout. */
        struct timeval tv = { .tv_sec = 30 };
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        *q = (RawQmp) { .in = { .fd = fd } };
        r = rawline_next(&q->in, false, 30 * USEC_PER_SEC, &line, &len);
        if (r < 0)
                return r;
        greeting = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(json_object_get(greeting, "QMP")))
                return -EPROTO;
        r = raw_qmp_command(q, "qmp_capabilities", NULL, &ret);
        if (r < 0)
                return r;
        return json_is_object(ret) ? 0 : -EPROTO;
}

void raw_qmp_close(RawQmp *q) {
        rawline_free(&q->in);
}

/* ---- QEMU launched by the harness ---- */

static int listen_socket(const char *dir, const char *name) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(sa.sun_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 1) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static int connect_socket(const char *dir, const char *name) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int raw_qemu_prepare(const char *name, RawQemu *ret) {
        _cleanup_free_ char *vms = strf("%s/vms", cfg.dir), *error = NULL;
        VmConfig *c = NULL;
        int r;

        *ret = (RawQemu) { .pid = -1, .qga_fd = -1, .qmp = { .in = { .fd = -1 } } };
        r = vm_config_load(vms, name, &c, &error);
        if (r < 0) {
                fprintf(stderr, "vmsup-bench: %s\n", error ?: strerror(-r));
                return r;
        }
        ret->config = c;
        r = launch_resolve_binary(c, &ret->binary);
        if (r < 0)
                return r;
        ret->sockdir = strf("%s/raw/%s", cfg.dir, name);
        (void) mkdir(ret->sockdir, 0700);
        return 0;
}

int raw_qemu_launch(RawQemu *q) {
        _cleanup_close_ int qemu_qmp = -EBADF, qga_listen = -EBADF, qmp_fd = -EBADF, logfd = -EBADF;
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *log = strf("%s/logs/raw-%s.log", cfg.dir, q->config->name);
        bool agent = q->config->agent && vm_config_has_agent_device(q->config);
        QemuFds fds = { .qmp_fd = LAUNCH_QMP_FD, .qga_listen_fd = agent ? LAUNCH_QGA_FD : -1 };
        int pair[2];
        pid_t parent = getpid();
        json_auto_t *ret = NULL;
        int r;

        /* As the supervisor does: a connected pair, QEMU's end at LAUNCH_QMP_FD. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        qmp_fd = pair[0];
        qemu_qmp = pair[1];
        if (agent) {
                qga_listen = listen_socket(q->sockdir, "qga.sock");
                if (qga_listen < 0)
                        return qga_listen;
        }
        r = vm_config_build_argv(q->config, q->binary, &fds, &argv);
        if (r < 0)
                return r;
        if (q->incoming && (strv_extend(&argv, "-incoming") < 0 || strv_extend(&argv, "defer") < 0))
                return -ENOMEM;
        logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd < 0)
                return -errno;

        q->pid = fork();
        if (q->pid < 0)
                return -errno;
        if (q->pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(1);
                int a = fcntl(qemu_qmp, F_DUPFD, 10), b = agent ? fcntl(qga_listen, F_DUPFD, 10) : -1;
                int l = fcntl(logfd, F_DUPFD, 10), nullfd = open("/dev/null", O_RDONLY);
                if (a < 0 || l < 0 || nullfd < 0 || (agent && b < 0))
                        _exit(127);
                if (dup2(nullfd, 0) < 0 || dup2(l, 1) < 0 || dup2(l, 2) < 0 || dup2(a, LAUNCH_QMP_FD) < 0 ||
                    (agent && dup2(b, LAUNCH_QGA_FD) < 0))
                        _exit(127);
                (void) syscall(SYS_close_range, agent ? LAUNCH_QGA_FD + 1 : LAUNCH_QMP_FD + 1, ~0U, 0);
                execv(argv[0], argv);
                _exit(127);
        }
        child_track(q->pid);
        qemu_qmp = safe_close(qemu_qmp);

        r = raw_qmp_handshake(&q->qmp, TAKE_FD(qmp_fd));
        if (r < 0)
                return r;
        if (agent) {
                q->qga_fd = connect_socket(q->sockdir, "qga.sock");
                if (q->qga_fd < 0)
                        return q->qga_fd;
        }
        if (q->incoming)
                return 0; /* the migration's caller sends "cont" */
        r = raw_qmp_command(&q->qmp, "cont", NULL, &ret);
        if (r < 0)
                return r;
        return json_is_object(ret) ? 0 : -EPROTO;
}

int raw_qemu_start(const char *name, RawQemu *ret) {
        int r = raw_qemu_prepare(name, ret);
        return r < 0 ? r : raw_qemu_launch(ret);
}

void raw_qemu_stop(RawQemu *q) {
        if (q->pid > 0) {
                bool gone = false;
                if (q->qmp.in.fd >= 0 && raw_qmp_command(&q->qmp, "quit", NULL, NULL) >= 0)
                        for (unsigned i = 0; i < 500 && !gone; i++) {
                                int st;
                                if (waitpid(q->pid, &st, WNOHANG) == q->pid)
                                        gone = true;
                                else
                                        usleep(10000);
                        }
                if (gone)
                        child_untrack(q->pid);
                else
                        processes_stop(&q->pid, 1, 5 * USEC_PER_SEC);
                q->pid = -1;
        }
        raw_qmp_close(&q->qmp);
        q->qga_fd = safe_close(q->qga_fd);
}

void raw_qemu_free(RawQemu *q) {
        raw_qemu_stop(q);
        vm_config_free(q->config);
        free(q->binary);
        free(q->sockdir);
        *q = (RawQemu) { .pid = -1, .qga_fd = -1, .qmp = { .in = { .fd = -1 } } };
}

/* ---- QGA ---- */

void raw_qga_init(RawQga *g, int fd) {
        /* Non-blocking: a sync the agent does not answer must time out. */
        (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        *g = (RawQga) { .in = { .fd = fd } };
}

void raw_qga_close(RawQga *g) {
        rawline_free(&g->in);
}

int raw_qga_sync(RawQga *g, uint64_t timeout_usec) {
        char line_out[128], idstr[32];
        uint64_t id, deadline = now_ns() + timeout_usec * 1000;
        int n, r;

        if (getrandom(&id, sizeof id, 0) != sizeof id)
                id = now_ns();
        id = (id & ((UINT64_C(1) << 53) - 1)) ?: 1;
        g->sync_id = id;
        snprintf(idstr, sizeof idstr, "%" PRIu64, id);
        n = snprintf(line_out, sizeof line_out,
                     "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%" PRIu64 "}}\n", id);
        rawline_discard(&g->in);
        r = write_all(g->in.fd, line_out, (size_t) n);
        if (r < 0)
                return r;
        for (;;) {
                uint64_t now = now_ns();
                char *line;
                size_t len;

                if (now >= deadline)
                        return -ETIMEDOUT;
                r = rawline_next(&g->in, true, (deadline - now) / 1000, &line, &len);
                if (r < 0)
                        return r;
                if (!memmem(line, len, idstr, strlen(idstr)))
                        continue;
                json_auto_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
                json_t *ret = json_object_get(v, "return");
                if (json_is_integer(ret) && (uint64_t) json_integer_value(ret) == id)
                        return 0;
        }
}

int raw_qga_command_line(RawQga *g, const char *cmd_line, char **ret_line, size_t *ret_len) {
        size_t len = strlen(cmd_line);
        _cleanup_free_ char *out = malloc(len + 1);
        int r;

        if (!out)
                return -ENOMEM;
        /* One sync per command: the supervisor's default (QGA_SYNC_EACH_COMMAND). */
        r = raw_qga_sync(g, 10 * USEC_PER_SEC);
        if (r < 0)
                return r;
        memcpy(out, cmd_line, len);
        out[len] = '\n';
        r = write_all(g->in.fd, out, len + 1);
        if (r < 0)
                return r;
        return rawline_next(&g->in, true, 300 * USEC_PER_SEC, ret_line, ret_len);
}

static int qga_reply(const char *line, size_t len, json_t **ret);

int raw_qga_command_nosync(RawQga *g, const char *cmd_line, json_t **ret) {
        size_t len = strlen(cmd_line);
        _cleanup_free_ char *out = malloc(len + 1);
        char *line;
        size_t n;
        int r;

        if (!out)
                return -ENOMEM;
        memcpy(out, cmd_line, len);
        out[len] = '\n';
        r = write_all(g->in.fd, out, len + 1);
        if (r < 0)
                return r;
        r = rawline_next(&g->in, true, 300 * USEC_PER_SEC, &line, &n);
        if (r < 0)
                return r;
        return qga_reply(line, n, ret);
}

int raw_qga_command(RawQga *g, const char *cmd_line, json_t **ret) {
        char *line;
        size_t len;
        int r;

        r = raw_qga_command_line(g, cmd_line, &line, &len);
        if (r < 0)
                return r;
        return qga_reply(line, len, ret);
}

static int qga_reply(const char *line, size_t len, json_t **ret) {
        json_auto_t *v = NULL;
        json_t *rv;

        v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(v))
                return -EPROTO;
        rv = json_object_get(v, "return");
        if (!rv)
                return json_is_object(json_object_get(v, "error")) ? -EREMOTEIO : -EPROTO;
        if (ret)
                *ret = json_incref(rv);
        return 0;
}
