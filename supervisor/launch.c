/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/capability.h>

#include "launch.h"
#include "log.h"

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

static int cap_last_cap(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
        int n = CAP_LAST_CAP;
        if (f && fscanf(f, "%d", &n) != 1)
                n = CAP_LAST_CAP;
        return n;
}

/* Moves fd to a number ≥ min so that the final dup2() calls cannot clobber each other. */
static int move_fd_high(int fd, int min) {
        int nfd;
        if (fd < 0)
                return fd;
        nfd = fcntl(fd, F_DUPFD_CLOEXEC, min);
        return nfd < 0 ? -errno : nfd;
}

_noreturn_ static void child_fail(int err, const char *what) {
        /* stderr is the pipe by now (or the supervisor's stderr before that). */
        fprintf(stderr, "vmsup: cannot start QEMU: %s: %s\n", what, strerror(err));
        fflush(stderr);
        _exit(127);
}

_noreturn_ static void child_exec(const VmConfig *c, char **argv, pid_t parent, int qmp_fd, int qga_fd,
                                  int out_fd, int last_cap) {
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
        if (getppid() != parent) /* the supervisor died before we set it */
                _exit(1);
        if (setsid() < 0)
                child_fail(errno, "setsid");

        qmp_fd = move_fd_high(qmp_fd, 10);
        qga_fd = move_fd_high(qga_fd, 10);
        out_fd = move_fd_high(out_fd, 10);
        if (qmp_fd < 0 || out_fd < 0 || (qga_fd < 0 && qga_fd != -1 && qga_fd != -EBADF))
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

        if (c->has_run_as) {
                /* Empty the bounding set while we still hold CAP_SETPCAP; setresuid() to a non-root
                 * uid then clears the permitted, effective and ambient sets. */
                for (int cap = 0; cap <= last_cap; cap++)
                        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                                child_fail(errno, "PR_CAPBSET_DROP");
                if (setgroups(c->n_run_as_groups, c->run_as_groups) < 0)
                        child_fail(errno, "setgroups");
                if (setresgid(c->run_as_gid, c->run_as_gid, c->run_as_gid) < 0)
                        child_fail(errno, "setresgid");
                if (setresuid(c->run_as_uid, c->run_as_uid, c->run_as_uid) < 0)
                        child_fail(errno, "setresuid");
                if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                        child_fail(errno, "PR_CAP_AMBIENT_CLEAR_ALL");
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_fail(errno, "PR_SET_NO_NEW_PRIVS");

        execv(argv[0], argv);
        child_fail(errno, argv[0]);
}

int launch_qemu(const VmConfig *c, int qmp_listen_fd, int qga_listen_fd, LaunchResult *ret) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *binary = NULL;
        _cleanup_close_ int pipe_r = -EBADF, pipe_w = -EBADF;
        QemuFds fds = {
                .qmp_listen_fd = LAUNCH_QMP_FD,
                .qga_listen_fd = qga_listen_fd >= 0 ? LAUNCH_QGA_FD : -1,
        };
        int pipefd[2], pidfd, last_cap;
        pid_t parent = getpid(), pid;
        int r;

        r = launch_resolve_binary(c, &binary);
        if (r < 0)
                return r;
        r = vm_config_build_argv(c, binary, &fds, &argv);
        if (r < 0)
                return r;
        if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        pipe_r = pipefd[0];
        pipe_w = pipefd[1];
        /* QEMU writes blocking; only the supervisor's end is non-blocking. */
        if (fcntl(pipe_w, F_SETFL, 0) < 0)
                return -errno;
        last_cap = cap_last_cap();

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_exec(c, argv, parent, qmp_listen_fd, qga_listen_fd, pipe_w, last_cap);

        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
                r = -errno;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        *ret = (LaunchResult) {
                .pid = pid,
                .pidfd = pidfd,
                .stderr_fd = TAKE_FD(pipe_r),
        };
        return 0;
}
