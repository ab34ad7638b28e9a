/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The run record's reader against malformed and hostile input, /proc/PID/stat's start time,
 * and the adoption decision (state-file.c, adopt.c). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adopt.h"
#include "macro.h"
#include "state-file.h"

#define GOOD "vmsup-run 1\nqemu_pid 1234\nqemu_start 5678\nqemu_exe /usr/bin/qemu-system-x86_64\n" \
             "launcher_pid 1233\nlauncher_start 5600\n"

static void test_parse_good(void **state) {
        RunRecord r;
        const char *why = NULL;
        char buf[RUN_RECORD_MAX + 1];

        assert_int_equal(run_record_parse(GOOD, strlen(GOOD), &r, &why), 0);
        assert_int_equal(r.qemu_pid, 1234);
        assert_int_equal(r.qemu_start, 5678);
        assert_string_equal(r.qemu_exe, "/usr/bin/qemu-system-x86_64");
        assert_int_equal(r.launcher_pid, 1233);
        assert_int_equal(r.launcher_start, 5600);
        /* Round trip. */
        assert_int_equal(run_record_format(&r, buf, sizeof buf), (int) strlen(GOOD));
        assert_string_equal(buf, GOOD);
}

static void test_parse_bad(void **state) {
        static const char * const bad[] = {
                "",
                "vmsup-run 2\nqemu_pid 1\n",
                "vmsup-run 1\n",
                GOOD "x",                                  /* trailing data */
                GOOD "\n",
                "vmsup-run 1\nqemu_pid 0\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid -5\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid +5\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 05\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 4194305\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 99999999999999999999999\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5\nqemu_start 18446744073709551616\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe /a b\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe /a\tb\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe /\xc3\xa9\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe \nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe /q\nlauncher_pid 5\nlauncher_start 1\n", /* same pid */
                "vmsup-run 1\nqemu_start 1\nqemu_pid 5\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n", /* order */
                "vmsup-run 1\nqemu_pid 5\nqemu_pid 5\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid  5\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5 \nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\r\nqemu_pid 5\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
                "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1", /* no \n */
                "vmsup-run 1\nqemu_pid5\nqemu_start 1\nqemu_exe /q\nlauncher_pid 2\nlauncher_start 1\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                RunRecord r = { .qemu_pid = 77 };
                const char *why = NULL;
                int k = run_record_parse(bad[i], strlen(bad[i]), &r, &why);
                if (k != -EBADMSG)
                        fail_msg("case %zu accepted", i);
                assert_non_null(why);
                assert_int_equal(r.qemu_pid, 77); /* untouched */
        }
}

static void test_parse_nul_and_size(void **state) {
        char buf[RUN_RECORD_MAX + 2];
        RunRecord r;
        const char *why = NULL;

        memcpy(buf, GOOD, sizeof GOOD);
        buf[20] = '\0';
        assert_int_equal(run_record_parse(buf, strlen(GOOD), &r, &why), -EBADMSG);
        memset(buf, 'a', sizeof buf);
        assert_int_equal(run_record_parse(buf, sizeof buf, &r, &why), -EBADMSG);
        assert_string_equal(why, "too long");
        /* An exe at the limit is refused, one below is taken. */
        char exe[RUN_RECORD_EXE_MAX + 1], text[RUN_RECORD_MAX + 1];
        memset(exe, 'x', sizeof exe);
        exe[0] = '/';
        exe[RUN_RECORD_EXE_MAX] = '\0';
        snprintf(text, sizeof text, "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe %s\nlauncher_pid 2\nlauncher_start 1\n", exe);
        assert_int_equal(run_record_parse(text, strlen(text), &r, &why), -EBADMSG);
        exe[RUN_RECORD_EXE_MAX - 1] = '\0';
        snprintf(text, sizeof text, "vmsup-run 1\nqemu_pid 5\nqemu_start 1\nqemu_exe %s\nlauncher_pid 2\nlauncher_start 1\n", exe);
        assert_int_equal(run_record_parse(text, strlen(text), &r, &why), 0);
}

static void test_format_refuses(void **state) {
        RunRecord r = { .qemu_pid = 5, .launcher_pid = 6, .qemu_exe = "relative" };
        char buf[RUN_RECORD_MAX + 1];

        assert_int_equal(run_record_format(&r, buf, sizeof buf), -EINVAL);
        strcpy(r.qemu_exe, "/with space");
        assert_int_equal(run_record_format(&r, buf, sizeof buf), -EINVAL);
        strcpy(r.qemu_exe, "/q");
        r.qemu_pid = 0;
        assert_int_equal(run_record_format(&r, buf, sizeof buf), -EINVAL);
}

static void test_file(void **state) {
        char dir[] = "/tmp/test-reattach.XXXXXX", path[64];
        RunRecord r = { .qemu_pid = 5, .qemu_start = 9, .qemu_exe = "/q", .launcher_pid = 6, .launcher_start = 3 }, back;
        const char *why = NULL;
        struct stat st;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(run_record_read(dir, &back, &why), -ENOENT);
        assert_int_equal(run_record_write(dir, &r), 0);
        snprintf(path, sizeof path, "%s/" RUN_RECORD_FILE, dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(run_record_read(dir, &back, &why), 0);
        assert_int_equal(back.qemu_pid, 5);
        /* Readable by others: refused. */
        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(run_record_read(dir, &back, &why), -EPERM);
        /* A symbolic link: refused. */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(symlink("/etc/passwd", path), 0);
        assert_int_equal(run_record_read(dir, &back, &why), -EPERM);
        assert_int_equal(unlink(path), 0);
        /* A directory: refused. */
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(run_record_read(dir, &back, &why), -EPERM);
        assert_int_equal(rmdir(path), 0);
        run_record_remove(dir);
        assert_int_equal(rmdir(dir), 0);
}

static void test_proc_stat(void **state) {
        static const char stat1[] = "1234 (qemu) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 19 20\n";
        static const char stat2[] = "1234 (a) b) c (d)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99 19\n";
        static const char bad1[] = "1234 (qemu S 1 2 3";
        static const char bad2[] = "1234 (qemu) S 1 2 3\n";
        static const char bad3[] = "1234 (qemu) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -1 19\n";
        uint64_t v = 0;

        assert_int_equal(proc_stat_start_time(stat1, strlen(stat1), &v), 0);
        assert_int_equal(v, 424242);
        assert_int_equal(proc_stat_start_time(stat2, strlen(stat2), &v), 0);
        assert_int_equal(v, 99);
        assert_int_equal(proc_stat_start_time(bad1, strlen(bad1), &v), -EBADMSG);
        assert_int_equal(proc_stat_start_time(bad2, strlen(bad2), &v), -EBADMSG);
        assert_int_equal(proc_stat_start_time(bad3, strlen(bad3), &v), -EBADMSG);
        assert_int_equal(proc_stat_field(stat1, strlen(stat1), 4, &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(proc_stat_field(stat2, strlen(stat2), 4, &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(proc_stat_field(stat1, strlen(stat1), 3, &v), -EINVAL);
        assert_int_equal(proc_stat_field(stat1, strlen(stat1), 60, &v), -EBADMSG);
        pid_t pp = 0;
        assert_int_equal(proc_parent(getpid(), &pp), 0);
        assert_int_equal(pp, getppid());
        /* Our own, for real. */
        assert_int_equal(proc_start_time(getpid(), &v), 0);
        assert_true(v > 0);
}

static void test_cmdline(void **state) {
        char out[16];

        assert_int_equal(proc_cmdline_argv0("/usr/bin/q\0-x\0", 15, out, sizeof out), 0);
        assert_string_equal(out, "/usr/bin/q");
        assert_int_equal(proc_cmdline_argv0("/usr/bin/q", 10, out, sizeof out), -EBADMSG); /* no NUL */
        assert_int_equal(proc_cmdline_argv0("\0x\0", 3, out, sizeof out), -EBADMSG);     /* empty */
        assert_int_equal(proc_cmdline_argv0("/a/very/long/path/q\0", 20, out, sizeof out), -EBADMSG);
        assert_int_equal(proc_exe_argv0(getpid(), out, 2), -EBADMSG);
}

/* ---- the decision ---- */

static const RunRecord rec = { .qemu_pid = 100, .qemu_start = 1000, .qemu_exe = "/usr/bin/qemu",
                               .launcher_pid = 99, .launcher_start = 990 };

static AdoptInput good_input(void) {
        return (AdoptInput) {
                .record = &rec, .launcher_reached = true, .launcher_uid = 0, .launcher_pid = 99, .our_uid = 0,
                .launcher_start = 990, .qemu_alive = true, .qemu_pid = 100, .qemu_start = 1000, .qemu_ppid = 99,
                .qemu_exe = "/usr/bin/qemu",
        };
}

static AdoptVerdict decide(const AdoptInput *in) {
        AdoptDecision d;
        adopt_decide(in, &d);
        assert_non_null(d.why);
        return d.verdict;
}

static void test_decide(void **state) {
        AdoptInput in = good_input();

        assert_int_equal(decide(&in), ADOPT_ATTACH);

        in = good_input(); in.record_error = -ENOENT; in.record = NULL;
        assert_int_equal(decide(&in), ADOPT_NOTHING);
        in = good_input(); in.record_error = -EBADMSG; in.record = NULL;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.record_error = -EPERM;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.record = NULL;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.launcher_reached = false;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in.qemu_proc_error = -ESRCH; /* neither is there: it ended unseen */
        assert_int_equal(decide(&in), ADOPT_CRASHED);
        in.qemu_proc_error = -EACCES;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.launcher_uid = 1000;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.launcher_pid = 98;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.launcher_start = 991; /* the launcher's pid was reused */
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.launcher_start_error = -ESRCH;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_pid = 101;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_ppid = 1; /* reparented: not the launcher's child */
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_start = 1001; /* reused pid */
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_proc_error = -ESRCH;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_exe = "/usr/bin/sleep";
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_exe = NULL; /* unreadable: not proof */
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_exe = "/usr/bin/qemu2";
        assert_int_equal(decide(&in), ADOPT_REFUSE);

        /* QEMU ended unsupervised: the launcher's word about it counts only once the
         * launcher itself is the recorded one. */
        in = good_input(); in.qemu_alive = false; in.exit_code = CLD_KILLED; in.exit_status = SIGKILL;
        in.qemu_proc_error = -ESRCH; in.qemu_exe = NULL;
        assert_int_equal(decide(&in), ADOPT_CRASHED);
        in.launcher_pid = 98;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_alive = false; in.exit_code = 12345;
        assert_int_equal(decide(&in), ADOPT_REFUSE);
        in = good_input(); in.qemu_alive = false; in.exit_code = CLD_EXITED; in.exit_status = 0;
        assert_int_equal(decide(&in), ADOPT_CRASHED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_good),
                cmocka_unit_test(test_parse_bad),
                cmocka_unit_test(test_parse_nul_and_size),
                cmocka_unit_test(test_format_refuses),
                cmocka_unit_test(test_file),
                cmocka_unit_test(test_proc_stat),
                cmocka_unit_test(test_cmdline),
                cmocka_unit_test(test_decide),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
