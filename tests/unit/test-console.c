/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The serial console (console.c) against a socket pair that plays QEMU's serial port:
 * the log's cap and rotation, one session at a time and its take-over, input to the
 * guest, and a session that does not read. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console.h"
#include "log.h"

typedef struct Fixture {
        sd_event *event;
        Console *console;
        int guest; /* QEMU's end of the serial stream */
        char dir[64];
        char log[128], old[128];
} Fixture;

static int setup_with(void **state, uint64_t log_max) {
        Fixture *f = calloc(1, sizeof *f);
        int p[2];

        assert_non_null(f);
        strcpy(f->dir, "/tmp/vmsup-console-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->log, sizeof f->log, "%s/console.log", f->dir);
        snprintf(f->old, sizeof f->old, "%s/console.log.1", f->dir);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(console_new(f->event, "t", f->log, log_max, &f->console), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
        assert_int_equal(console_attach(f->console, p[0]), 0);
        assert_true(console_is_attached(f->console));
        f->guest = p[1];
        assert_int_equal(fcntl(f->guest, F_SETFL, O_NONBLOCK), 0);
        *state = f;
        return 0;
}

static int setup(void **state) {
        return setup_with(state, 1000);
}

static int teardown(void **state) {
        Fixture *f = *state;

        console_free(f->console);
        safe_close(f->guest);
        sd_event_unref(f->event);
        (void) unlink(f->log);
        (void) unlink(f->old);
        (void) rmdir(f->dir);
        free(f);
        return 0;
}

static void run(Fixture *f) {
        for (int i = 0; i < 50; i++)
                (void) sd_event_run(f->event, 1000);
}

static off_t size_of(const char *p) {
        struct stat st;
        return stat(p, &st) < 0 ? -1 : st.st_size;
}

static void guest_write(Fixture *f, size_t n) {
        char buf[1024];

        memset(buf, 'x', sizeof buf);
        while (n > 0) {
                size_t m = n < sizeof buf ? n : sizeof buf;
                ssize_t k = write(f->guest, buf, m);
                if (k < 0) {
                        assert_int_equal(errno, EAGAIN);
                        run(f);
                        continue;
                }
                n -= (size_t) k;
        }
        run(f);
}

static void test_log_cap_and_rotation(void **state) {
        Fixture *f = *state;
        struct stat st;

        guest_write(f, 3500);
        /* 1000 + 1000 + 1000 went through the old log; 500 are in the current one. */
        assert_int_equal(size_of(f->log), 500);
        assert_int_equal(size_of(f->old), 1000);
        assert_int_equal(stat(f->log, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_no_log(void **state) {
        Fixture *f;

        setup_with(state, 0);
        f = *state;
        guest_write(f, 3000);
        assert_int_equal(size_of(f->log), -1);
        teardown(state);
}

static void test_one_session_and_force(void **state) {
        Fixture *f = *state;
        int a, b, c;
        char buf[16];

        assert_int_equal(console_open_session(f->console, false, &a), 0);
        assert_int_equal(console_open_session(f->console, false, &b), -EBUSY);
        assert_int_equal(console_open_session(f->console, true, &c), 0);
        run(f);
        /* The session taken over sees EOF. */
        assert_int_equal(read(a, buf, sizeof buf), 0);
        /* What the guest writes reaches the session; what the session writes reaches the guest. */
        assert_int_equal(write(f->guest, "hello", 5), 5);
        run(f);
        assert_int_equal(read(c, buf, sizeof buf), 5);
        assert_memory_equal(buf, "hello", 5);
        assert_int_equal(write(c, "ls\n", 3), 3);
        run(f);
        assert_int_equal(read(f->guest, buf, sizeof buf), 3);
        assert_memory_equal(buf, "ls\n", 3);
        /* The caller closes: a new session is possible. */
        close(c);
        run(f);
        assert_int_equal(console_open_session(f->console, false, &b), 0);
        close(b);
        close(a);
}

static void test_session_that_does_not_read(void **state) {
        Fixture *f = *state;
        char buf[16];
        int s;

        assert_int_equal(console_open_session(f->console, false, &s), 0);
        /* Far more than the session's queue and both socket buffers: the guest is never
         * held up (guest_write asserts it can always go on) and the session is closed. */
        guest_write(f, 4 * CONSOLE_SESSION_BUFFER + 4 * 1024 * 1024);
        for (;;) {
                ssize_t k = read(s, buf, sizeof buf);
                assert_true(k >= 0);
                if (k == 0)
                        break;
        }
        close(s);
        assert_true(console_is_attached(f->console));
}

static void test_guest_end(void **state) {
        Fixture *f = *state;
        char buf[4];
        int s;

        assert_int_equal(console_open_session(f->console, false, &s), 0);
        f->guest = safe_close(f->guest);
        run(f);
        assert_false(console_is_attached(f->console));
        assert_int_equal(read(s, buf, sizeof buf), 0);
        assert_int_equal(console_open_session(f->console, false, &s), -ENOTCONN);
        close(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_log_cap_and_rotation, setup, teardown),
                cmocka_unit_test(test_no_log),
                cmocka_unit_test_setup_teardown(test_one_session_and_force, setup, teardown),
                cmocka_unit_test_setup_teardown(test_session_that_does_not_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_guest_end, setup, teardown),
        };
        log_set_max_level(LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
