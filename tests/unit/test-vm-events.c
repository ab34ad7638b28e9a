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

/* Direct connections subscribe by connection (no name, no match rule): once each, at most
 * VM_EVENTS_SUBSCRIBERS_MAX together with the named ones, and gone with the connection. */
static void test_peers(void **state) {
        _cleanup_(vm_events_freep) VmEvents *ev = NULL;
        sd_bus *peers[VM_EVENTS_SUBSCRIBERS_MAX + 1];
        gid_t groups[] = { 1000, 27 };
        Caller caller = { .uid = 1000, .gid = (gid_t) -1, .groups = groups, .n_groups = 2 };

        assert_int_equal(vm_events_new(NULL, NULL, NULL, &ev), 0);
        for (size_t i = 0; i < ELEMENTSOF(peers); i++)
                assert_int_equal(sd_bus_new(&peers[i]), 0);
        assert_int_equal(vm_events_subscribe_peer(ev, peers[0], &caller), 1);
        assert_int_equal(vm_events_subscribe_peer(ev, peers[0], &caller), 0);
        assert_int_equal(vm_events_subscribers(ev), 1);
        for (size_t i = 1; i < VM_EVENTS_SUBSCRIBERS_MAX; i++)
                assert_int_equal(vm_events_subscribe_peer(ev, peers[i], &caller), 1);
        assert_int_equal(vm_events_subscribe_peer(ev, peers[VM_EVENTS_SUBSCRIBERS_MAX], &caller), -EBUSY);
        /* A name is no peer, and a peer's end is not a name's. */
        assert_int_equal(vm_events_unsubscribe(ev, ":1.5"), 0);
        assert_int_equal(vm_events_unsubscribe_peer(ev, peers[VM_EVENTS_SUBSCRIBERS_MAX]), 0);
        assert_int_equal(vm_events_unsubscribe_peer(ev, peers[3]), 1);
        assert_int_equal(vm_events_unsubscribe_peer(ev, peers[3]), 0);
        assert_int_equal(vm_events_subscribers(ev), VM_EVENTS_SUBSCRIBERS_MAX - 1);
        assert_int_equal(vm_events_subscribe_peer(ev, peers[VM_EVENTS_SUBSCRIBERS_MAX], &caller), 1);
        ev = vm_events_free(ev); /* drops its references */
        for (size_t i = 0; i < ELEMENTSOF(peers); i++)
                assert_null(sd_bus_unref(peers[i]));
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
                cmocka_unit_test(test_peers),
                cmocka_unit_test(test_budget),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
