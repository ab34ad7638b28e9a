/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher (see launch.h): the supervisor's one child, which forks and execs QEMU for it. */

#include <assert.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "launch.h"
#include "log.h"
#include "sandbox.h"
#include "state-file.h"

#define LAUNCH_MAGIC 0x766d7375U /* "vmsu" */
#define LAUNCH_OP_START 1U
#define LAUNCH_OP_ADOPT 2U
#define LAUNCH_OP_RECORD 3U /* QEMU is up (its final exec done): record what runs; no answer */
#define LAUNCH_OP_RELOAD 4U /* + a memfd with the definition the supervisor validated */
#define LAUNCH_OP_START_INCOMING 5U /* as START, with -incoming defer: the VM arrives by migration */

typedef struct LaunchRequest {
        uint32_t magic;
        uint32_t op;
        uint32_t n_fds; /* 1: stderr pipe; 2: and the agent listener */
} LaunchRequest;

typedef struct LaunchReply {
        uint32_t magic;
        int32_t error; /* 0 or a positive errno */
        int32_t pid;
} LaunchReply;

/* The answer to LAUNCH_OP_ADOPT. */
typedef struct LaunchAdoptReply {
        uint32_t magic;
        int32_t error;  /* 0 or a positive errno */
        int32_t pid;    /* QEMU's pid (also when it has exited) */
        int32_t alive;  /* 1: QEMU runs, and SCM_RIGHTS carries its pidfd, an exit pipe, the QMP socket */
        int32_t code;   /* when alive is 0: how it ended, as in LaunchExit */
        int32_t status;
} LaunchAdoptReply;

/* The answer to LAUNCH_OP_RELOAD: LaunchReply's fields, then why it was refused. */
typedef struct LaunchReloadReply {
        uint32_t magic;
        int32_t error; /* 0 or a positive errno */
        int32_t pid;   /* 0 */
        char message[CONFIG_ERROR_MAX];
} LaunchReloadReply;

typedef struct LaunchExit {
        int32_t code;   /* CLD_EXITED, CLD_KILLED, CLD_DUMPED */
        int32_t status; /* the exit status or the signal */
} LaunchExit;

/* The supervisor's end. */
static int launcher_sock = -EBADF;
static pid_t launcher_pid = 0;
static sd_event_source *launcher_source = NULL;

/* The request the launcher has not answered yet (one at a time: one VM). */
typedef enum PendingKind {
        PENDING_START,
        PENDING_RELOAD,
} PendingKind;

static struct {
        bool active;
        PendingKind kind;
        int stderr_r;                  /* a start: our end of QEMU's output pipe */
        LaunchCallback callback;       /* a start */
        LaunchReloadCallback reload_callback; /* a reload; NULL once abandoned */
        void *userdata;
        sd_event_source *timer;
} pending = { .stderr_r = -EBADF };

/* The launcher answers in order. Answers still owed for requests given up on (timed out):
 * the next answers of their kind are theirs, not the next request's. */
static unsigned late_starts = 0;
static struct {
        bool owed;
        bool wanted;    /* sent before the loop, with the supervisor's own definition */
} late_reload;
/* The launcher took a definition the supervisor did not (its answer came too late): no start
 * until a reload succeeds. */
static bool diverged = false;
static LaunchLateCallback late_callback = NULL;
static void *late_userdata = NULL;

int launch_resolve_binary(const VmConfig *c, char **ret) {
        const char *path;
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;

        if (c->binary[0] == '/') {
                if (access(c->binary, X_OK) < 0)
                        return -errno;
                *ret = strdup(c->binary);
                return *ret ? 0 : -ENOMEM;
        }
        path = getenv("PATH") ?: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *p = NULL;
                if (dir[0] != '/')
                        continue;
                if (asprintf(&p, "%s/%s", dir, c->binary) < 0)
                        return -ENOMEM;
                if (access(p, X_OK) == 0) {
                        *ret = TAKE_PTR(p);
                        return 0;
                }
        }
        return -ENOENT;
}

/* ---- descriptors over the socket pair ---- */

static int send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(sizeof(int) * LAUNCH_FDS_MAX)];
        } control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t k;

        if (n_fds > LAUNCH_FDS_MAX)
                return -EINVAL;
        if (n_fds > 0) {
                struct cmsghdr *c;
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        do
                k = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        return (size_t) k == len ? 0 : -EIO;
}

/* Receives one datagram of at most len bytes and at most max_fds descriptors (close-on-exec).
 * Returns the datagram's size (0 at EOF) or -errno; a truncated datagram or descriptor list, or
 * an empty datagram with descriptors, is -EBADMSG, and then no descriptor is returned. */
static ssize_t recv_with_fds(int sock, void *buf, size_t len, int flags, int *fds, size_t max_fds,
                             size_t *ret_n_fds) {
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(sizeof(int) * LAUNCH_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        size_t n = 0;
        bool bad = false;
        ssize_t k;

        do
                k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_TRUNC | flags);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                size_t m;
                int *p;
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                p = (int *) CMSG_DATA(c);
                for (size_t i = 0; i < m; i++) {
                        if (n < max_fds)
                                fds[n++] = p[i];
                        else {
                                safe_close(p[i]);
                                bad = true;
                        }
                }
        }
        /* An empty datagram reads like the end of the stream, but the end carries no descriptors. */
        if (bad || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t) k > len || (k == 0 && n > 0)) {
                for (size_t i = 0; i < n; i++)
                        safe_close(fds[i]);
                *ret_n_fds = 0;
                return -EBADMSG;
        }
        *ret_n_fds = n;
        return k;
}

/* ---- the launcher process ---- */

/* Moves fd to a number ≥ min so that the final dup2() calls cannot clobber each other. */
static int move_fd_high(int fd, int min) {
        int nfd;
        if (fd < 0)
                return fd;
        nfd = fcntl(fd, F_DUPFD_CLOEXEC, min);
        return nfd < 0 ? -errno : nfd;
}

_noreturn_ static void child_fail(int err, const char *what) {
        /* stderr is the pipe by now (or the launcher's stderr before that). */
        fprintf(stderr, "vmsup: cannot start QEMU: %s: %s\n", what, strerror(err));
        fflush(stderr);
        _exit(127);
}

/* QEMU's process, between fork() and exec. */
_noreturn_ static void child_exec(const VmConfig *c, char **argv, pid_t parent, int qmp_fd, int qga_fd,
                                  int out_fd) {
        SandboxPolicy policy = {
                .who = "QEMU",
                .caps = SANDBOX_QEMU_CAPS,
                .change_ids = c->has_run_as,
                .uid = c->run_as_uid,
                .gid = c->run_as_gid,
                .groups = c->run_as_groups,
                .n_groups = c->n_run_as_groups,
                .seccomp = SECCOMP_MODE_OFF, /* QEMU's own: -sandbox */
        };
        sigset_t ss;
        int nullfd;

        /* The supervisor blocks the signals its loop handles; QEMU needs them back. */
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);
        sigemptyset(&ss);
        (void) sigprocmask(SIG_SETMASK, &ss, NULL);

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                child_fail(errno, "PR_SET_PDEATHSIG");
        if (getppid() != parent) /* the launcher died before we set it */
                _exit(1);
        if (setsid() < 0)
                child_fail(errno, "setsid");

        qmp_fd = move_fd_high(qmp_fd, 10);
        qga_fd = move_fd_high(qga_fd, 10);
        out_fd = move_fd_high(out_fd, 10);
        if (qmp_fd < 0 || out_fd < 0 || (qga_fd < 0 && qga_fd != -1))
                child_fail(EBADF, "descriptors");
        nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (nullfd < 0)
                child_fail(errno, "/dev/null");
        if (dup2(nullfd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
            dup2(out_fd, STDERR_FILENO) < 0 || dup2(qmp_fd, LAUNCH_QMP_FD) < 0)
                child_fail(errno, "dup2");
        if (qga_fd >= 0 && dup2(qga_fd, LAUNCH_QGA_FD) < 0)
                child_fail(errno, "dup2");
        /* Exactly these descriptors survive exec: close everything above them. */
        if (syscall(SYS_close_range, qga_fd >= 0 ? LAUNCH_QGA_FD + 1 : LAUNCH_QMP_FD + 1, ~0U, 0) < 0)
                child_fail(errno, "close_range");

        /* No capabilities, run_as's ids and groups, NO_NEW_PRIVS. Messages go to the pipe. */
        if (sandbox_apply(&policy) < 0)
                child_fail(EPERM, "confinement");
        /* The kernel clears the parent-death signal when the ids change: set it again, as
         * QEMU's user, or a QEMU with run_as would outlive the launcher. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                child_fail(errno, "PR_SET_PDEATHSIG");
        if (getppid() != parent)
                _exit(1);

        execv(argv[0], argv);
        child_fail(errno, argv[0]);
}

typedef struct LauncherChild {
        pid_t pid;    /* 0: none */
        int pidfd;
        int exit_w;   /* the exit pipe's write end */
        int qmp;      /* a copy of the supervisor's end of QMP, for the next supervisor */
        bool exited;  /* QEMU ended while no supervisor was there: kept for the next one */
        LaunchExit exit;
} LauncherChild;

/* Forks QEMU. Returns 0 with the child's pid and pidfd, or -errno. */
static int launcher_spawn(const VmConfig *c, bool incoming, int qmp_fd, int qga_fd, int out_fd, pid_t *ret_pid,
                          int *ret_pidfd) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *binary = NULL;
        QemuFds fds = {
                .qmp_fd = LAUNCH_QMP_FD,
                .qga_listen_fd = qga_fd >= 0 ? LAUNCH_QGA_FD : -1,
        };
        pid_t parent = getpid(), pid;
        int pidfd, r;

        r = launch_resolve_binary(c, &binary);
        if (r < 0)
                return r;
        r = vm_config_build_argv(c, binary, &fds, &argv);
        if (r < 0)
                return r;
        /* The state arrives later on a descriptor passed through QMP (migrate-incoming). */
        if (incoming && (strv_extend(&argv, "-incoming") < 0 || strv_extend(&argv, "defer") < 0))
                return -ENOMEM;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_exec(c, argv, parent, qmp_fd, qga_fd, out_fd);
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
                r = -errno;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        *ret_pid = pid;
        *ret_pidfd = pidfd;
        return 0;
}

static bool fd_is(int fd, mode_t type) {
        struct stat st;
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

static void launcher_record(const char *runtime_dir, const VmConfig *c, pid_t pid, bool execed);

/* A new supervisor asks for what the last one had: the running QEMU's pidfd, a fresh exit
 * pipe and the QMP connection; or how QEMU ended while nobody was there. */
static void launcher_adopt(int sock, LauncherChild *child) {
        LaunchAdoptReply reply = { .magic = LAUNCH_MAGIC };
        int pipefd[2];
        int r;

        if (child->exited) {
                reply.code = child->exit.code;
                reply.status = child->exit.status;
                reply.pid = child->pid;
                (void) send_with_fds(sock, &reply, sizeof reply, NULL, 0);
                child->exited = false;
                child->pid = 0;
                return;
        }
        if (child->pid <= 0 || child->qmp < 0) {
                reply.error = ESRCH;
                (void) send_with_fds(sock, &reply, sizeof reply, NULL, 0);
                return;
        }
        if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
                reply.error = errno;
                (void) send_with_fds(sock, &reply, sizeof reply, NULL, 0);
                return;
        }
        reply.pid = child->pid;
        reply.alive = 1;
        r = send_with_fds(sock, &reply, sizeof reply, (int[]) { child->pidfd, pipefd[0], child->qmp }, 3);
        safe_close(pipefd[0]);
        if (r < 0) {
                safe_close(pipefd[1]);
                return;
        }
        safe_close(child->exit_w);
        child->exit_w = pipefd[1];
}

/* Waits at most LAUNCH_REPLY_TIMEOUT_MSEC for the launcher's reply on sock, then reads it as
 * recv_with_fds() does. Returns its size (0 at EOF), -ETIMEDOUT, or -errno. */
static ssize_t recv_reply(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_n_fds) {
        struct pollfd p = { .fd = sock, .events = POLLIN };
        int r;

        do
                r = poll(&p, 1, LAUNCH_REPLY_TIMEOUT_MSEC);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        if (r == 0)
                return -ETIMEDOUT;
        return recv_with_fds(sock, buf, len, MSG_DONTWAIT, fds, max_fds, ret_n_fds);
}

/* Any request: returns the number of descriptors (0 for ADOPT and RECORD, 1 for RELOAD) with *ret_op,
 * -ECONNRESET at the end of the stream, -EAGAIN, -EBADMSG (its descriptors closed). */
static int launch_request_recv_op(int sock, int fds[static LAUNCH_FDS_MAX], uint32_t *ret_op) {
        LaunchRequest req;
        size_t n_fds = 0;
        ssize_t k;

        k = recv_with_fds(sock, &req, sizeof req, MSG_DONTWAIT, fds, LAUNCH_FDS_MAX, &n_fds);
        if (k == 0)
                return -ECONNRESET;
        if (k < 0)
                return (int) k;
        if ((size_t) k == sizeof req && req.magic == LAUNCH_MAGIC &&
            IN_SET(req.op, LAUNCH_OP_ADOPT, LAUNCH_OP_RECORD) && req.n_fds == 0 && n_fds == 0) {
                *ret_op = req.op;
                return 0;
        }
        if ((size_t) k == sizeof req && req.magic == LAUNCH_MAGIC && req.op == LAUNCH_OP_RELOAD &&
            req.n_fds == 1 && n_fds == 1 && fd_is(fds[0], S_IFREG)) {
                *ret_op = req.op;
                return 1;
        }
        if ((size_t) k != sizeof req || req.magic != LAUNCH_MAGIC ||
            !IN_SET(req.op, LAUNCH_OP_START, LAUNCH_OP_START_INCOMING) ||
            req.n_fds != n_fds || !IN_SET(n_fds, 1U, 2U) || !fd_is(fds[0], S_IFIFO) ||
            (n_fds == 2 && !fd_is(fds[1], S_IFSOCK))) {
                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                return -EBADMSG;
        }
        *ret_op = req.op;
        return (int) n_fds;
}

int launch_request_recv(int sock, int fds[static LAUNCH_FDS_MAX]) {
        uint32_t op = 0;
        int r = launch_request_recv_op(sock, fds, &op);

        if (r == -ECONNRESET)
                return 0;
        if (r >= 0 && !IN_SET(op, LAUNCH_OP_START, LAUNCH_OP_START_INCOMING)) {
                /* Not a start: refused here, and what came with it (a reload's memfd) closed. */
                for (int i = 0; i < r; i++)
                        safe_close(fds[i]);
                return -EBADMSG;
        }
        return r;
}

/* The definition for the next QEMU, re-read (LAUNCH_OP_RELOAD): the launcher reads the file
 * itself, as the administrator left it, and takes it only when it is the very text the
 * supervisor validated (fd) — a compromised supervisor cannot make the launcher start
 * anything but what the definition says. The QEMU running now is not touched. Answers with
 * the refusal's reason; returns the new definition, or NULL (refused). */
static VmConfig *launcher_reload(const VmConfig *c, int sock, int fd) {
        LaunchReloadReply reply = { .magic = LAUNCH_MAGIC };
        _cleanup_free_ char *text = NULL, *theirs = NULL, *error = NULL;
        _cleanup_(vm_config_freep) VmConfig *n = NULL;
        size_t len = 0, their_len = 0;
        int r;

        r = vm_config_read_file(c->path, &text, &len, &error);
        if (r >= 0) {
                theirs = malloc(CONFIG_FILE_MAX + 1);
                if (!theirs)
                        r = -ENOMEM;
        }
        if (r >= 0) {
                ssize_t k;
                do {
                        k = pread(fd, theirs + their_len, CONFIG_FILE_MAX + 1 - their_len, (off_t) their_len);
                        if (k > 0)
                                their_len += (size_t) k;
                } while ((k > 0 && their_len <= CONFIG_FILE_MAX) || (k < 0 && errno == EINTR));
                if (k < 0)
                        r = -errno;
                else if (their_len != len || memcmp(theirs, text, len) != 0) {
                        r = -ESTALE;
                        if (asprintf(&error, "%s: $: the file changed while it was being reloaded; reload again",
                                     c->path) < 0)
                                error = NULL;
                }
        }
        if (r >= 0)
                r = vm_config_parse(c->path, c->name, text, len, &n, &error);
        if (r >= 0)
                r = vm_config_apply_default_user(n, VM_QEMU_DEFAULT_USER, &error);
        if (r >= 0 && (sandbox_launcher_caps(n) & ~sandbox_launcher_caps(c)) != 0) {
                r = -EPERM;
                if (asprintf(&error, "%s: $.run_as: QEMU's identity can change from root to another user only "
                             "when the supervisor starts", c->path) < 0)
                        error = NULL;
        }
        if (r < 0) {
                reply.error = -r;
                snprintf(reply.message, sizeof reply.message, "%s", error ?: strerror(-r));
                n = vm_config_free(n);
        }
        (void) send_with_fds(sock, &reply, sizeof reply, NULL, 0);
        return TAKE_PTR(n);
}

/* One request: validated completely before anything is started. A reload replaces *cp. */
static int launcher_handle(const VmConfig **cp, int sock, LauncherChild *child, const char *runtime_dir) {
        const VmConfig *c = *cp;
        LaunchReply reply = { .magic = LAUNCH_MAGIC };
        int fds[LAUNCH_FDS_MAX], pipefd[2] = { -EBADF, -EBADF }, qmp[2] = { -EBADF, -EBADF };
        size_t n_fds = 0;
        int r;

        uint32_t op = 0;

        r = launch_request_recv_op(sock, fds, &op);
        if (r == -EAGAIN)
                return 0;
        if (r == -ECONNRESET)
                return r; /* the supervisor closed its end */
        if (r >= 0 && op == LAUNCH_OP_ADOPT) {
                launcher_adopt(sock, child);
                if (child->pid <= 0 && runtime_dir)
                        run_record_remove(runtime_dir); /* its end was told */
                return 0;
        }
        if (r >= 0 && op == LAUNCH_OP_RECORD) {
                if (child->pid > 0 && !child->exited)
                        launcher_record(runtime_dir, c, child->pid, true);
                return 0;
        }
        if (r >= 0 && op == LAUNCH_OP_RELOAD) {
                VmConfig *n = launcher_reload(c, sock, fds[0]);
                safe_close(fds[0]);
                if (n)
                        *cp = n; /* the one before stays allocated: QEMU's child may still use it (it is ours since fork) */
                return 0;
        }
        if (r > 0) {
                n_fds = (size_t) r;
                if (child->pid > 0)
                        r = -EBUSY; /* one QEMU at a time: the supervisor starts after the last one was reaped */
                else if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
                        r = -errno;
                else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) < 0)
                        r = -errno;
                else
                        r = launcher_spawn(c, op == LAUNCH_OP_START_INCOMING, qmp[1], n_fds == 2 ? fds[1] : -1,
                                           fds[0], &child->pid, &child->pidfd);
        }
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        safe_close(qmp[1]);

        if (r < 0) {
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                safe_close(qmp[0]);
                reply.error = -r;
                (void) send_with_fds(sock, &reply, sizeof reply, NULL, 0);
                return 0;
        }
        launcher_record(runtime_dir, c, child->pid, false);
        child->exit_w = pipefd[1];
        child->qmp = fcntl(qmp[0], F_DUPFD_CLOEXEC, 3);
        reply.pid = child->pid;
        r = send_with_fds(sock, &reply, sizeof reply, (int[]) { child->pidfd, pipefd[0], qmp[0] }, 3);
        safe_close(pipefd[0]);
        safe_close(qmp[0]);
        if (r < 0) {
                /* Nobody would manage it. */
                log_error_errno(r, "launcher: cannot answer the supervisor, killing QEMU: %m");
                (void) kill(child->pid, SIGKILL);
        }
        return 0;
}

static void launcher_reap(LauncherChild *child, bool supervised) {
        siginfo_t si = {};
        LaunchExit ex;

        if (waitid(P_PID, child->pid, &si, WEXITED | WNOHANG) < 0) {
                if (errno == EINTR)
                        return;
                /* Cannot happen for our own child; report it as killed rather than hang. */
                si.si_pid = child->pid;
                si.si_code = CLD_KILLED;
                si.si_status = SIGKILL;
        }
        if (si.si_pid == 0)
                return; /* not yet */
        ex = (LaunchExit) { .code = si.si_code, .status = si.si_status };
        child->pidfd = safe_close(child->pidfd);
        child->qmp = safe_close(child->qmp);
        if (!supervised) {
                /* Nobody to tell: keep it for the next supervisor. */
                child->exit_w = safe_close(child->exit_w);
                child->exited = true;
                child->exit = ex;
                return;
        }
        if (write(child->exit_w, &ex, sizeof ex) != (ssize_t) sizeof ex)
                log_warning_errno(errno, "launcher: cannot report QEMU's exit: %m");
        child->exit_w = safe_close(child->exit_w);
        child->pid = 0;
}

/* The run record for the QEMU just started (see state-file.h): what the next supervisor
 * checks before it adopts QEMU. Written at the fork with the binary QEMU is about to exec as
 * its executable, and again once QEMU is up (execed) with what its command line says (a
 * wrapper script execs the real binary). */
static void launcher_record(const char *runtime_dir, const VmConfig *c, pid_t pid, bool execed) {
        _cleanup_free_ char *binary = NULL;
        RunRecord rec = { .qemu_pid = pid, .launcher_pid = getpid() };
        int r;

        if (!runtime_dir)
                return;
        if (execed)
                r = proc_exe_argv0(pid, rec.qemu_exe, sizeof rec.qemu_exe);
        else {
                r = launch_resolve_binary(c, &binary);
                if (r >= 0 && strlen(binary) >= sizeof rec.qemu_exe)
                        r = -ENAMETOOLONG;
                if (r >= 0)
                        strcpy(rec.qemu_exe, binary);
        }
        if (r >= 0)
                r = proc_start_time(pid, &rec.qemu_start);
        if (r >= 0)
                r = proc_start_time(getpid(), &rec.launcher_start);
        if (r >= 0)
                r = run_record_write(runtime_dir, &rec);
        if (r < 0)
                log_warning_errno(r, "launcher: cannot write the run record, QEMU cannot be adopted after a supervisor's crash: %m");
}

/* Peer credentials: only the supervisor's user may take over. */
static bool peer_is_ours(int fd) {
        struct ucred uc;
        socklen_t l = sizeof uc;

        return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) == 0 && uc.uid == geteuid();
}

_noreturn_ static void launcher_run(const VmConfig *c, int sock, int listen_fd, const char *runtime_dir) {
        LauncherChild child = { .pidfd = -EBADF, .exit_w = -EBADF, .qmp = -EBADF };
        SandboxPolicy policy = {
                .who = "launcher",
                .caps = sandbox_launcher_caps(c),
                .seccomp = SECCOMP_MODE_OFF, /* QEMU would inherit it */
        };
        bool terminating = false;
        sigset_t ss;
        int sfd;

        /* No parent-death signal: the launcher and QEMU outlive a supervisor that crashes,
         * is killed or is replaced; the next one adopts them through listen_fd. An explicit
         * stop reaches QEMU through the supervisor, or (with no supervisor) through SIGTERM
         * to the launcher. */
        (void) prctl(PR_SET_NAME, "vmsupd-launcher");
        /* Not dumpable: the supervisor runs as the same uid, and a compromised supervisor must
         * not write the launcher's memory through /proc/PID/mem (or attach to it) to start
         * something else than QEMU with the launcher's capabilities. Only CAP_SYS_PTRACE gets
         * past this now. QEMU is dumpable again after its exec. */
        if (prctl(PR_SET_DUMPABLE, 0) < 0)
                _exit(EXIT_FAILURE);
        /* Nothing of the supervisor's but stdin/stdout/stderr, our socket and the listener. */
        sock = move_fd_high(sock, 5);
        listen_fd = move_fd_high(listen_fd, 5);
        if (sock < 0 || listen_fd < 0 || dup2(sock, 3) < 0 || dup2(listen_fd, 4) < 0)
                _exit(EXIT_FAILURE);
        sock = 3;
        listen_fd = 4;
        if (syscall(SYS_close_range, 5, ~0U, 0) < 0 || listen(listen_fd, 1) < 0)
                _exit(EXIT_FAILURE);
        /* SIGTERM and SIGINT stay blocked (the supervisor's mask): while a supervisor is
         * there, it decides when QEMU ends. Without one, SIGTERM ends QEMU (and then us). */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                _exit(EXIT_FAILURE);
        if (sandbox_apply(&policy) < 0)
                _exit(EXIT_FAILURE);

        for (;;) {
                bool running = child.pid > 0 && !child.exited;
                struct pollfd p[4] = {
                        { .fd = sock, .events = POLLIN },
                        { .fd = running ? child.pidfd : -1, .events = POLLIN },
                        { .fd = sock < 0 ? listen_fd : -1, .events = POLLIN },
                        { .fd = sock < 0 ? sfd : -1, .events = POLLIN },
                };

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(EXIT_FAILURE);
                }
                /* An exit first: a start request may follow right after it was reported. */
                if (p[1].revents) {
                        launcher_reap(&child, sock >= 0);
                        if (sock >= 0 && runtime_dir)
                                run_record_remove(runtime_dir);
                        if (terminating)
                                _exit(EXIT_SUCCESS);
                }
                if (sock >= 0 && (p[0].revents & POLLIN)) {
                        if (launcher_handle(&c, sock, &child, runtime_dir) == -ECONNRESET)
                                p[0].revents |= POLLHUP;
                        else
                                continue;
                }
                if (sock >= 0 && (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))) {
                        sock = safe_close(sock);
                        if (child.pid <= 0)
                                _exit(EXIT_SUCCESS); /* nothing left to keep */
                        log_warning("launcher: the supervisor is gone; QEMU (pid %d) keeps running until the next one takes over.",
                                    (int) child.pid);
                        child.exit_w = safe_close(child.exit_w);
                        continue;
                }
                if (sock < 0 && (p[2].revents & POLLIN)) {
                        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        if (fd >= 0 && !peer_is_ours(fd)) {
                                log_warning("launcher: refusing a connection from another user.");
                                fd = safe_close(fd);
                        }
                        if (fd >= 0)
                                sock = fd;
                }
                if (sock < 0 && (p[3].revents & POLLIN)) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof si) == (ssize_t) sizeof si) {
                                if (!running)
                                        _exit(EXIT_SUCCESS);
                                log_info("launcher: %s with no supervisor: terminating QEMU.", strsignal((int) si.ssi_signo));
                                (void) syscall(SYS_pidfd_send_signal, child.pidfd, SIGTERM, NULL, 0);
                                terminating = true;
                        }
                }
        }
}

int launcher_fork(const VmConfig *c, const char *runtime_dir) {
        _cleanup_close_ int listen_fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int pair[2], k;
        pid_t pid;

        if (launcher_sock >= 0)
                return -EBUSY;
        /* Where the next supervisor finds the launcher should this one die. */
        k = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/" LAUNCH_SOCKET, runtime_dir);
        if (k < 0 || (size_t) k >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (listen_fd < 0)
                return -errno;
        if (unlink(sa.sun_path) < 0 && errno != ENOENT)
                return -errno;
        /* listen() in the launcher: a connecting supervisor's SO_PEERCRED names the process
         * that called it. */
        if (bind(listen_fd, (struct sockaddr *) &sa, sizeof sa) < 0 || chmod(sa.sun_path, 0600) < 0)
                return -errno;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        /* Flush what stdio holds, or the child would write it a second time. */
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0) {
                safe_close(pair[0]);
                safe_close(pair[1]);
                return -errno;
        }
        if (pid == 0) {
                safe_close(pair[0]);
                launcher_run(c, pair[1], listen_fd, runtime_dir);
        }
        safe_close(pair[1]);
        launcher_sock = pair[0];
        launcher_pid = pid;
        return 0;
}

int launch_adopt(const char *runtime_dir, LaunchAdoption *ret) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        LaunchRequest req = { .magic = LAUNCH_MAGIC, .op = LAUNCH_OP_ADOPT };
        LaunchAdoptReply reply;
        int fds[LAUNCH_FDS_MAX];
        size_t n_fds = 0;
        struct ucred uc;
        socklen_t l = sizeof uc;
        ssize_t k;
        int r;

        *ret = (LaunchAdoption) { .sock = -EBADF, .pidfd = -EBADF, .exit_fd = -EBADF, .qmp_fd = -EBADF };
        r = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/" LAUNCH_SOCKET, runtime_dir);
        if (r < 0 || (size_t) r >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0)
                return -errno;
        ret->launcher_pid = uc.pid;
        ret->launcher_uid = uc.uid;
        if (uc.uid != geteuid())
                return -EPERM; /* tell it nothing */
        r = send_with_fds(fd, &req, sizeof req, NULL, 0);
        if (r < 0)
                return r;
        k = recv_reply(fd, &reply, sizeof reply, fds, ELEMENTSOF(fds), &n_fds);
        if (k == 0)
                return -ECONNRESET;
        if (k < 0)
                return (int) k;
        if ((size_t) k != sizeof reply || reply.magic != LAUNCH_MAGIC || reply.error < 0 ||
            (reply.error == 0 && reply.alive && (n_fds != 3 || reply.pid <= 0)) ||
            ((reply.error > 0 || !reply.alive) && n_fds != 0)) {
                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                return -EBADMSG;
        }
        if (reply.error > 0)
                return -reply.error;
        ret->sock = TAKE_FD(fd);
        ret->alive = reply.alive;
        ret->pid = reply.pid;
        ret->code = reply.code;
        ret->status = reply.status;
        if (reply.alive) {
                ret->pidfd = fds[0];
                ret->exit_fd = fds[1];
                ret->qmp_fd = fds[2];
        }
        return 0;
}

void launch_adoption_release(LaunchAdoption *a) {
        a->sock = safe_close(a->sock);
        a->pidfd = safe_close(a->pidfd);
        a->exit_fd = safe_close(a->exit_fd);
        a->qmp_fd = safe_close(a->qmp_fd);
}

int launcher_use(LaunchAdoption *a) {
        if (launcher_sock >= 0 || a->sock < 0)
                return -EBUSY;
        launcher_sock = TAKE_FD(a->sock);
        launcher_pid = a->launcher_pid;
        return 0;
}

static void pending_clear(void) {
        pending.active = false;
        pending.callback = NULL;
        pending.reload_callback = NULL;
        pending.userdata = NULL;
        pending.timer = sd_event_source_disable_unref(pending.timer);
}

static void pending_finish(int error, LaunchResult *lr) {
        LaunchCallback cb = pending.callback;
        void *userdata = pending.userdata;

        assert(pending.kind == PENDING_START);
        if (error < 0)
                pending.stderr_r = safe_close(pending.stderr_r);
        else
                lr->stderr_fd = TAKE_FD(pending.stderr_r);
        pending_clear();
        cb(error, lr, userdata);
}

/* A reload's answer (or its end: -ETIMEDOUT, -ECHILD). */
static void pending_reload_finish(int error, const char *message) {
        LaunchReloadCallback cb = pending.reload_callback;
        void *userdata = pending.userdata;

        assert(pending.kind == PENDING_RELOAD);
        if (error == 0 && diverged) {
                log_info("The QEMU launcher and the supervisor hold the same definition again.");
                diverged = false;
        }
        pending_clear();
        if (cb)
                cb(error, message, userdata);
}

static int on_launch_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        if (pending.kind == PENDING_START) {
                /* A reply after this is a QEMU nobody manages: on_launcher_event() kills it. */
                log_error("The QEMU launcher did not answer a start request within %u ms.", LAUNCH_REPLY_TIMEOUT_MSEC);
                late_starts++;
                pending_finish(-ETIMEDOUT, NULL);
                return 0;
        }
        /* The launcher may still take that definition when it answers: until then it gets no
         * request (a start would run from a definition nobody knows). */
        log_error("The QEMU launcher did not answer a reload within %u ms.", LAUNCH_REPLY_TIMEOUT_MSEC);
        late_reload.owed = true;
        pending_reload_finish(-ETIMEDOUT, NULL);
        return 0;
}

/* Reads a reload's answer: 0 when the launcher took the definition, -errno with its reason
 * (sanitized, in a buffer of CONFIG_ERROR_MAX) when it did not. */
static int reload_reply_parse(ssize_t k, LaunchReloadReply *reply, size_t n_fds, char *ret_message) {
        ret_message[0] = '\0';
        if (k == 0)
                return -ECHILD;
        if (k < 0)
                return (int) k;
        /* A launcher from before this request answers with a bare LaunchReply. */
        if ((size_t) k == sizeof(LaunchReply) && reply->magic == LAUNCH_MAGIC && reply->error > 0 && n_fds == 0)
                return -EOPNOTSUPP;
        if ((size_t) k != sizeof *reply || reply->magic != LAUNCH_MAGIC || reply->error < 0 || n_fds != 0)
                return -EBADMSG;
        if (reply->error > 0) {
                reply->message[sizeof reply->message - 1] = '\0';
                text_sanitize(ret_message, CONFIG_ERROR_MAX, reply->message, strlen(reply->message), 0);
                return -reply->error;
        }
        return 0;
}

static void late_reload_answered(int r) {
        bool wanted = late_reload.wanted;

        late_reload.owed = late_reload.wanted = false;
        if (r < 0) {
                log_info("The QEMU launcher refused the reload it answered late: it keeps its definition.");
                return;
        }
        if (wanted) {
                log_info("The QEMU launcher took this supervisor's definition, late.");
                return;
        }
        /* It reads the file itself and takes it only as the supervisor validated it: the
         * definition it had cannot be given back. What the file says now is reloaded. */
        log_warning("The QEMU launcher took a definition late, after its reload had failed: reloading again, "
                    "no start until the supervisor holds the same.");
        diverged = true;
        if (late_callback)
                late_callback(late_userdata);
}

/* An answer nobody waits for: the QEMU it may hand over (its pidfd first) is killed, its
 * descriptors closed. */
static void answer_discard(int *fds, size_t n_fds, const char *why) {
        if (n_fds >= 1)
                (void) syscall(SYS_pidfd_send_signal, fds[0], SIGKILL, NULL, 0);
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        log_warning("%s", why);
}

/* The launcher answers requests in order and otherwise sends nothing: anything else
 * readable is its end. */
static int on_launcher_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        union {
                LaunchReply start;
                LaunchReloadReply reload;
        } u;
        LaunchReply reply;
        int fds[LAUNCH_FDS_MAX];
        size_t n_fds = 0;
        ssize_t k;

        k = recv_with_fds(fd, &u, sizeof u, MSG_DONTWAIT, fds, ELEMENTSOF(fds), &n_fds);
        if (k == -EAGAIN)
                return 0;
        if (k > 0 && late_starts > 0 && (size_t) k == sizeof(LaunchReply)) {
                /* A QEMU whose start the supervisor gave up on: nobody manages it. */
                late_starts--;
                answer_discard(fds, n_fds, "The launcher answered a start request too late, ignoring.");
                return 0;
        }
        if (k > 0 && late_reload.owed) {
                char message[CONFIG_ERROR_MAX];
                int r = reload_reply_parse(k, &u.reload, n_fds, message);

                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                late_reload_answered(r);
                return 0;
        }
        if (k > 0 && pending.active && pending.kind == PENDING_RELOAD) {
                char message[CONFIG_ERROR_MAX];
                int r = reload_reply_parse(k, &u.reload, n_fds, message);

                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                pending_reload_finish(r, message[0] ? message : NULL);
                return 0;
        }
        if (k > 0 && pending.active) {
                LaunchResult lr = { .pidfd = -EBADF, .exit_fd = -EBADF, .qmp_fd = -EBADF, .stderr_fd = -EBADF };

                memcpy(&reply, &u.start, sizeof reply);
                if ((size_t) k != sizeof reply || reply.magic != LAUNCH_MAGIC || reply.error < 0 ||
                    (reply.error == 0 && (n_fds != 3 || reply.pid <= 0)) || (reply.error > 0 && n_fds != 0)) {
                        if (n_fds >= 1 && (size_t) k == sizeof reply && reply.error == 0)
                                (void) syscall(SYS_pidfd_send_signal, fds[0], SIGKILL, NULL, 0);
                        for (size_t i = 0; i < n_fds; i++)
                                safe_close(fds[i]);
                        pending_finish(-EBADMSG, NULL);
                        return 0;
                }
                if (reply.error > 0) {
                        pending_finish(-reply.error, NULL);
                        return 0;
                }
                log_debug("launcher: QEMU is pid %d", (int) reply.pid);
                lr.pid = reply.pid;
                lr.pidfd = fds[0];
                lr.exit_fd = fds[1];
                lr.qmp_fd = fds[2];
                pending_finish(0, &lr);
                return 0;
        }
        if (k > 0) {
                /* Nothing asked for it: if it hands over a QEMU, nobody manages that one. */
                answer_discard(fds, n_fds, "The launcher sent an answer nobody waits for, ignoring.");
                return 0;
        }
        sd_event *e = sd_event_source_get_event(s);

        log_error("The QEMU launcher (pid %d) is gone; exiting.", (int) launcher_pid);
        launcher_source = sd_event_source_disable_unref(launcher_source);
        if (pending.active && pending.kind == PENDING_START)
                pending_finish(-ECHILD, NULL);
        else if (pending.active)
                pending_reload_finish(-ECHILD, NULL);
        return sd_event_exit(e, -ECHILD);
}

int launcher_attach(sd_event *e) {
        if (launcher_sock < 0)
                return -ECHILD;
        return sd_event_add_io(e, &launcher_source, launcher_sock, EPOLLIN, on_launcher_event, NULL);
}

bool launch_busy_reloading(void) {
        return diverged || late_reload.owed || (pending.active && pending.kind == PENDING_RELOAD);
}

void launch_on_late_reload(LaunchLateCallback callback, void *userdata) {
        late_callback = callback;
        late_userdata = userdata;
}

/* The bound on the launcher's answer to the request about to be sent. */
static int pending_timer_start(void) {
        return sd_event_add_time_relative(sd_event_source_get_event(launcher_source), &pending.timer, CLOCK_MONOTONIC,
                                          LAUNCH_REPLY_TIMEOUT_MSEC * USEC_PER_MSEC, 0, on_launch_timeout, NULL);
}

int launch_qemu(int qga_listen_fd, bool incoming, LaunchCallback callback, void *userdata) {
        _cleanup_close_ int pipe_r = -EBADF, pipe_w = -EBADF;
        LaunchRequest req = { .magic = LAUNCH_MAGIC, .op = incoming ? LAUNCH_OP_START_INCOMING : LAUNCH_OP_START };
        int pipefd[2], send_fds[LAUNCH_FDS_MAX];
        int r;

        if (launcher_sock < 0 || !launcher_source)
                return -ECHILD;
        if (pending.active || late_reload.owed)
                return -EBUSY;
        if (diverged)
                return -ESTALE;
        if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        pipe_r = pipefd[0];
        pipe_w = pipefd[1];
        /* QEMU writes blocking; only the supervisor's end is non-blocking. */
        if (fcntl(pipe_w, F_SETFL, 0) < 0)
                return -errno;

        r = pending_timer_start();
        if (r < 0)
                return r;

        send_fds[req.n_fds++] = pipe_w;
        if (qga_listen_fd >= 0)
                send_fds[req.n_fds++] = qga_listen_fd;
        r = send_with_fds(launcher_sock, &req, sizeof req, send_fds, req.n_fds);
        if (r < 0) {
                pending.timer = sd_event_source_disable_unref(pending.timer);
                return r == -EPIPE || r == -ECONNRESET ? -ECHILD : r;
        }
        /* The answer comes right after the launcher's fork(), on the loop. */
        pending.active = true;
        pending.kind = PENDING_START;
        pending.stderr_r = TAKE_FD(pipe_r);
        pending.callback = callback;
        pending.userdata = userdata;
        return 0;
}

/* Sends text in a memfd as a reload request. */
static int send_reload_fd(const char *text, size_t len) {
        _cleanup_close_ int fd = -EBADF;
        LaunchRequest req = { .magic = LAUNCH_MAGIC, .op = LAUNCH_OP_RELOAD, .n_fds = 1 };
        size_t done = 0;
        ssize_t k;
        int r;

        fd = memfd_create("vmsup-definition", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (done < len) {
                k = write(fd, text + done, len - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                done += (size_t) k;
        }
        r = send_with_fds(launcher_sock, &req, sizeof req, &fd, 1);
        if (r < 0)
                return r == -EPIPE || r == -ECONNRESET ? -ECHILD : r;
        return 0;
}

/* As send_reload_fd(), the answer then awaited on the loop. */
static int send_reload(const char *text, size_t len) {
        int r;

        if (launcher_sock < 0 || !launcher_source)
                return -ECHILD;
        if (pending.active || late_reload.owed)
                return -EBUSY;
        r = pending_timer_start();
        if (r < 0)
                return r;
        r = send_reload_fd(text, len);
        if (r < 0) {
                pending.timer = sd_event_source_disable_unref(pending.timer);
                return r;
        }
        pending.active = true;
        pending.kind = PENDING_RELOAD;
        return 0;
}

int launch_reload(const char *text, size_t len, LaunchReloadCallback callback, void *userdata) {
        int r;

        r = send_reload(text, len);
        if (r < 0)
                return r;
        pending.reload_callback = callback;
        pending.userdata = userdata;
        return 0;
}

void launch_reload_abandon(void *userdata) {
        if (pending.active && pending.kind == PENDING_RELOAD && pending.userdata == userdata) {
                pending.reload_callback = NULL;
                pending.userdata = NULL;
        }
}

int launch_reload_sync(const char *text, size_t len, char **ret_error) {
        LaunchReloadReply reply;
        char message[CONFIG_ERROR_MAX];
        int fds[LAUNCH_FDS_MAX];
        size_t n_fds = 0;
        ssize_t k;
        int r;

        if (launcher_sock < 0)
                return -ECHILD;
        if (launcher_source || pending.active)
                return -EBUSY; /* on the loop: launch_reload() */
        r = send_reload_fd(text, len);
        if (r < 0)
                return r;
        /* The launcher reads and parses one file: it answers at once. */
        k = recv_reply(launcher_sock, &reply, sizeof reply, fds, ELEMENTSOF(fds), &n_fds);
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        r = reload_reply_parse(k, &reply, n_fds, message);
        if (r == -ETIMEDOUT)
                /* Its answer comes on the loop; until then it gets no request. */
                late_reload.owed = late_reload.wanted = true;
        if (r < 0) {
                if (ret_error && message[0])
                        *ret_error = strdup(message);
                return r;
        }
        return 0;
}

void launch_note_running(void) {
        LaunchRequest req = { .magic = LAUNCH_MAGIC, .op = LAUNCH_OP_RECORD };

        if (launcher_sock >= 0)
                (void) send_with_fds(launcher_sock, &req, sizeof req, NULL, 0);
}

int launch_read_exit(int exit_fd, siginfo_t *ret) {
        LaunchExit ex;
        ssize_t k;

        do
                k = read(exit_fd, &ex, sizeof ex);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return errno == EAGAIN ? 0 : -errno;
        if (k == 0) {
                /* The launcher died; QEMU got its parent-death signal. */
                *ret = (siginfo_t) { .si_code = CLD_KILLED, .si_status = SIGKILL };
                return 1;
        }
        if ((size_t) k != sizeof ex || !IN_SET(ex.code, CLD_EXITED, CLD_KILLED, CLD_DUMPED))
                return -EBADMSG;
        *ret = (siginfo_t) { .si_code = ex.code, .si_status = ex.status };
        return 1;
}
