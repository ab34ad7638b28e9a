/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event ring's numbering and the Event signals' token bucket (vm-events.c). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

#include "vm-events.h"

static void test_sequence(void **state) {
        _cleanup_(vm_events_freep) VmEvents *ev = NULL;

        assert_int_equal(vm_events_new(NULL, NULL, NULL, &ev), 0);
        assert_int_equal(vm_events_last_seq(ev), 0);
        /* More than the ring holds: the numbering goes on, the oldest are dropped. */
        for (unsigned i = 0; i < 3 * VM_EVENTS_RING_MAX; i++)
                assert_int_equal(vm_events_record(ev, "STOP", "{}", i), 0);
        assert_int_equal(vm_events_last_seq(ev), 3 * VM_EVENTS_RING_MAX);
        assert_int_equal(vm_events_subscribers(ev), 0);
}

static void test_too_large(void **state) {
        _cleanup_(vm_events_freep) VmEvents *ev = NULL;
        size_t n = VM_EVENTS_RING_BYTES + 1;
        char *big = malloc(n + 1);

        assert_non_null(big);
        memset(big, 'x', n);
        big[n] = '\0';
        assert_int_equal(vm_events_new(NULL, NULL, NULL, &ev), 0);
        /* Not kept, but numbered: a reader of the ring sees the gap. */
        assert_int_equal(vm_events_record(ev, "BIG", big, 1), 0);
        assert_int_equal(vm_events_record(ev, "STOP", "{}", 2), 0);
        assert_int_equal(vm_events_last_seq(ev), 2);
        free(big);
}

static void test_budget(void **state) {
        _cleanup_(vm_events_freep) VmEvents *ev = NULL;
        uint64_t t = 1000000, dropped = 99, last = 99, seq = 0;

        assert_int_equal(vm_events_new(NULL, NULL, NULL, &ev), 0);
        /* A full bucket: a burst goes out, nothing dropped before it. */
        for (unsigned i = 0; i < VM_EVENTS_SIGNAL_BURST; i++) {
                assert_true(vm_events_signal_budget(ev, t, ++seq, &dropped, &last));
                assert_int_equal(dropped, 0);
        }
        /* Then, at the same instant, nothing more. */
        for (unsigned i = 0; i < 10; i++)
                assert_false(vm_events_signal_budget(ev, t, ++seq, &dropped, &last));
        /* One signal's worth of time later: one goes, and says ten were dropped, the last
         * numbered seq - 1. */
        t += 1000000 / VM_EVENTS_SIGNAL_RATE;
        assert_true(vm_events_signal_budget(ev, t, ++seq, &dropped, &last));
        assert_int_equal(dropped, 10);
        assert_int_equal(last, seq - 1);
        assert_false(vm_events_signal_budget(ev, t, ++seq, &dropped, &last));
        /* A long quiet time refills the bucket to the burst, no more. */
        t += 3600ULL * 1000000ULL;
        for (unsigned i = 0; i < VM_EVENTS_SIGNAL_BURST; i++)
                assert_true(vm_events_signal_budget(ev, t, ++seq, &dropped, &last));
        assert_false(vm_events_signal_budget(ev, t, ++seq, &dropped, &last));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sequence),
                cmocka_unit_test(test_too_large),
                cmocka_unit_test(test_budget),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
