/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The supervisor's confinement: its system call filter, installed in a forked child, kills on
 * what the supervisor never does and lets through what it does; sandbox_apply() leaves exactly
 * the capabilities, ids and flags a policy asks for, as /proc/self/status reports them. */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

#include <cmocka.h>
#include <linux/capability.h>

#include "log.h"
#include "sandbox.h"

typedef void (*ChildFn)(void);

/* Runs fn in a child under the supervisor's filter (mode); returns the wait status. fn exits
 * 0 when everything it tried worked. */
static int run_filtered(SeccompMode mode, ChildFn fn) {
        int status = 0;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                scmp_filter_ctx ctx = NULL;
                struct rlimit no_core = { 0, 0 };

                (void) setrlimit(RLIMIT_CORE, &no_core); /* SIGSYS would dump core */
                if (sandbox_seccomp_new(mode, &ctx) < 0 || seccomp_load(ctx) < 0)
                        _exit(100);
                fn();
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static void assert_killed_by_sigsys(int status) {
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void assert_exited_ok(int status) {
        if (!WIFEXITED(status))
                fail_msg("child killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- forbidden ---- */

static void do_ptrace(void) {
        (void) syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL);
}
static void do_mount(void) {
        (void) syscall(SYS_mount, "none", "/nonexistent", "tmpfs", 0, NULL);
}
static void do_bpf(void) {
        (void) syscall(SYS_bpf, 0, NULL, 0);
}
static void do_init_module(void) {
        (void) syscall(SYS_init_module, NULL, 0, "");
}
static void do_execve(void) {
        char *argv[] = { (char *) "/bin/true", NULL };
        (void) syscall(SYS_execve, "/bin/true", argv, NULL);
}
static void do_socket_inet(void) {
        (void) syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
}
static void do_socket_inet6(void) {
        (void) syscall(SYS_socket, AF_INET6, SOCK_DGRAM, 0);
}
static void do_socket_netlink(void) {
        (void) syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0);
}
static void do_fork(void) {
        (void) syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
}
static void do_kill(void) {
        (void) syscall(SYS_kill, 1, 0); /* signal 0: a permission check only */
}
static void do_setuid(void) {
        (void) syscall(SYS_setuid, 65534);
}
static void do_ioctl_tiocsti(void) {
        char c = 'x';
        (void) syscall(SYS_ioctl, 0, TIOCSTI, &c);
}
static void do_unshare(void) {
        (void) syscall(SYS_unshare, 0);
}

static void test_forbidden(void **state) {
        static const struct {
                const char *name;
                ChildFn fn;
        } cases[] = {
                { "ptrace", do_ptrace },
                { "mount", do_mount },
                { "bpf", do_bpf },
                { "init_module", do_init_module },
                { "execve", do_execve },
                { "socket(AF_INET)", do_socket_inet },
                { "socket(AF_INET6)", do_socket_inet6 },
                { "socket(AF_NETLINK)", do_socket_netlink },
                { "clone (fork)", do_fork },
                { "kill", do_kill },
                { "setuid", do_setuid },
                { "ioctl(TIOCSTI)", do_ioctl_tiocsti },
                { "unshare", do_unshare },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int status = run_filtered(SECCOMP_MODE_KILL, cases[i].fn);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
                        fail_msg("%s was not killed with SIGSYS (status %#x)", cases[i].name, status);
        }
}

/* ---- allowed ---- */

static void do_allowed(void) {
        int p[2], fd, n = 0;
        char buf[4];

        if (syscall(SYS_getpid) != getpid())
                _exit(1);
        if (pipe2(p, O_CLOEXEC) < 0)
                _exit(2);
        if (write(p[1], "abc", 3) != 3 || read(p[0], buf, sizeof buf) != 3)
                _exit(3);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                _exit(4);
        if (ioctl(p[0], FIONREAD, &n) < 0 || n != 0)
                _exit(6);
        fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buf, sizeof buf) <= 0)
                _exit(7);
        close(fd);
        free(malloc(1 << 20)); /* mmap, munmap */
        if (now_usec(CLOCK_MONOTONIC) == 0)
                _exit(8);
}

/* A sanitizer's runtime makes calls of its own (sigaltstack, and at exit clone and ptrace), which
 * is why sanitizer builds run the supervisor with --seccomp=log: the allowed set is tested in
 * plain builds only. */
static bool sanitizer_build(void) {
        return seccomp_mode_default() != SECCOMP_MODE_KILL;
}

static void test_allowed(void **state) {
        if (sanitizer_build())
                skip();
        assert_exited_ok(run_filtered(SECCOMP_MODE_KILL, do_allowed));
}

/* socketpair() is the launcher's, made before the filter: the supervisor has no use for it. */
static void do_socketpair(void) {
        int s[2];
        (void) socketpair(AF_UNIX, SOCK_STREAM, 0, s);
}

static void test_socketpair_refused(void **state) {
        assert_killed_by_sigsys(run_filtered(SECCOMP_MODE_KILL, do_socketpair));
}

/* The debug mode lets everything run. */
static void do_forbidden_then_ok(void) {
        int fd = (int) syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0)
                close(fd);
        (void) syscall(SYS_unshare, 0);
}

static void test_log_mode(void **state) {
        assert_exited_ok(run_filtered(SECCOMP_MODE_LOG, do_forbidden_then_ok));
        assert_killed_by_sigsys(run_filtered(SECCOMP_MODE_KILL, do_forbidden_then_ok));
}

static void test_modes(void **state) {
        scmp_filter_ctx ctx = NULL;

        assert_int_equal(seccomp_mode_from_string("kill"), SECCOMP_MODE_KILL);
        assert_int_equal(seccomp_mode_from_string("log"), SECCOMP_MODE_LOG);
        assert_int_equal(seccomp_mode_from_string("off"), -EINVAL);
        assert_int_equal(seccomp_mode_from_string(""), -EINVAL);
        assert_int_equal(sandbox_seccomp_new(SECCOMP_MODE_OFF, &ctx), -EINVAL);
        assert_null(ctx);
        assert_true(sandbox_seccomp_allowlist_size() > 20 && sandbox_seccomp_allowlist_size() < 100);
}

/* ---- sandbox_apply(), read back from /proc/self/status ---- */

static uint64_t status_hex(const char *key) {
        char line[256];
        FILE *f = fopen("/proc/self/status", "re");
        uint64_t v = UINT64_MAX;

        if (!f)
                return v;
        while (fgets(line, sizeof line, f))
                if (startswith(line, key) && line[strlen(key)] == ':') {
                        v = strtoull(line + strlen(key) + 1, NULL, 16);
                        break;
                }
        fclose(f);
        return v;
}

static uint64_t status_dec(const char *key) {
        char line[256];
        FILE *f = fopen("/proc/self/status", "re");
        uint64_t v = UINT64_MAX;

        if (!f)
                return v;
        while (fgets(line, sizeof line, f))
                if (startswith(line, key) && line[strlen(key)] == ':') {
                        v = strtoull(line + strlen(key) + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

/* The supervisor's policy with run_as: CAP_KILL only, NO_NEW_PRIVS, the filter. Exits with the
 * number of the first check that failed. */
static void apply_supervisor(void) {
        VmConfig c = { .has_run_as = true };
        SandboxPolicy p = {
                .who = "test",
                .caps = sandbox_supervisor_caps(&c),
                .seccomp = seccomp_mode_default(),
        };
        uint64_t want = SANDBOX_CAP(CAP_KILL);

        if (sandbox_apply(&p) < 0)
                _exit(10);
        /* fopen() and friends are allowed: the supervisor reads /proc/PID/stat. */
        if (status_hex("CapEff") != want)
                _exit(11);
        if (status_hex("CapPrm") != want)
                _exit(12);
        if (status_hex("CapBnd") != want)
                _exit(13);
        if (status_hex("CapInh") != 0 || status_hex("CapAmb") != 0)
                _exit(14);
        if (status_dec("NoNewPrivs") != 1)
                _exit(15);
        if (status_dec("Seccomp") != 2)
                _exit(16);
        _exit(0);
}

/* QEMU's policy with run_as nobody and one supplementary group. */
static void apply_qemu(void) {
        static const gid_t groups[] = { 12345 };
        SandboxPolicy p = {
                .who = "test",
                .caps = SANDBOX_QEMU_CAPS,
                .change_ids = true,
                .uid = 65534,
                .gid = 65534,
                .groups = groups,
                .n_groups = ELEMENTSOF(groups),
                .seccomp = SECCOMP_MODE_OFF,
        };
        gid_t g[4];

        if (sandbox_apply(&p) < 0)
                _exit(20);
        if (getuid() != 65534 || geteuid() != 65534 || getgid() != 65534 || getegid() != 65534)
                _exit(21);
        if (getgroups(ELEMENTSOF(g), g) != 1 || g[0] != 12345)
                _exit(22);
        if (status_hex("CapEff") != 0 || status_hex("CapPrm") != 0 || status_hex("CapBnd") != 0 ||
            status_hex("CapInh") != 0 || status_hex("CapAmb") != 0)
                _exit(23);
        if (status_dec("NoNewPrivs") != 1 || status_dec("Seccomp") != 0)
                _exit(24);
        _exit(0);
}

/* The launcher's policy with run_as: exactly what it needs to become run_as in QEMU's child. */
static void apply_launcher(void) {
        VmConfig c = { .has_run_as = true };
        SandboxPolicy p = { .who = "test", .caps = sandbox_launcher_caps(&c) };
        uint64_t want = SANDBOX_CAP(CAP_SETUID) | SANDBOX_CAP(CAP_SETGID) | SANDBOX_CAP(CAP_SETPCAP) |
                        SANDBOX_CAP(CAP_KILL); /* QEMU's parent-death signal across uids */

        if (sandbox_apply(&p) < 0)
                _exit(30);
        if (status_hex("CapEff") != want || status_hex("CapBnd") != want || status_dec("Seccomp") != 0)
                _exit(31);
        c.has_run_as = false;
        if (sandbox_launcher_caps(&c) != 0 || sandbox_supervisor_caps(&c) != 0)
                _exit(32);
        _exit(0);
}

static int run_child(ChildFn fn) {
        int status = 0;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                fn();
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static void test_apply(void **state) {
        ChildFn fns[] = { apply_supervisor, apply_qemu, apply_launcher };

        if (geteuid() != 0 || status_hex("CapEff") == 0)
                skip();
        for (size_t i = 0; i < ELEMENTSOF(fns); i++) {
                int status = run_child(fns[i]);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        fail_msg("policy %zu: status %#x (exit %d)", i, status,
                                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_modes),
                cmocka_unit_test(test_forbidden),
                cmocka_unit_test(test_allowed),
                cmocka_unit_test(test_socketpair_refused),
                cmocka_unit_test(test_log_mode),
                cmocka_unit_test(test_apply),
        };
        log_set_max_level(LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
