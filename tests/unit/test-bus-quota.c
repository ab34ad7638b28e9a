/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fair shares (bus-quota.c): what one connection and one uid may hold at once, each bound
 * exactly, released tickets given back, root not counted. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus-errors.h"
#include "bus-quota.h"

#define MAX_TICKETS 64U

typedef struct Fixture {
        sd_bus *bus;
        int peer;
        BusQuota *q;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        int pair[2];

        /* It only builds messages, but sd-bus builds them only for a started bus: one on a
         * socketpair whose other end never answers. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        assert_int_equal(sd_bus_new(&f->bus), 0);
        assert_int_equal(sd_bus_set_fd(f->bus, pair[0], pair[0]), 0);
        assert_true(sd_bus_start(f->bus) >= 0);
        f->peer = pair[1];
        assert_int_equal(bus_quota_new(&f->q), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        bus_quota_free(f->q);
        sd_bus_close_unref(f->bus);
        close(f->peer);
        free(f);
        return 0;
}

/* A method call as it arrives from the bus, from sender. */
static sd_bus_message *call_from(Fixture *f, const char *sender) {
        sd_bus_message *m = NULL;

        assert_int_equal(sd_bus_message_new_method_call(f->bus, &m, "org.vmsup.VM.t", "/org/vmsup/VM", "org.vmsup.VM1",
                                                        "GetStatus"),
                         0);
        assert_int_equal(sd_bus_message_set_sender(m, sender), 0);
        return m;
}

/* Acquires one ticket; returns 0 or the negative errno, the error's name checked. */
static int take(Fixture *f, const char *sender, uid_t uid, BusQuotaKind kind, BusTicket **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Caller caller = { .uid = uid, .gid = (gid_t) -1 };
        sd_bus_message *m = call_from(f, sender);
        BusTicket *t = NULL;
        int r;

        r = bus_quota_acquire(f->q, m, &caller, kind, &t, &error);
        sd_bus_message_unref(m);
        if (r < 0) {
                assert_int_equal(r, -EBUSY);
                assert_true(sd_bus_error_has_name(&error, VMSUP_ERROR_BUSY));
                assert_null(t);
        } else
                assert_false(sd_bus_error_is_set(&error));
        if (ret)
                *ret = t;
        return r;
}

static void release_all(BusTicket **t, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bus_ticket_release(t[i]);
                t[i] = NULL;
        }
}

static void test_per_connection(void **state) {
        Fixture *f = *state;
        BusTicket *t[MAX_TICKETS] = {};

        /* Exactly the bound, then Busy; another connection of the same uid still gets its share. */
        for (unsigned i = 0; i < BUS_CALLS_PER_CONNECTION_MAX; i++)
                assert_int_equal(take(f, ":1.10", 1000, BUS_QUOTA_CALL, &t[i]), 0);
        assert_int_equal(bus_quota_held(f->q), BUS_CALLS_PER_CONNECTION_MAX);
        assert_int_equal(take(f, ":1.10", 1000, BUS_QUOTA_CALL, NULL), -EBUSY);
        assert_int_equal(bus_quota_held(f->q), BUS_CALLS_PER_CONNECTION_MAX);
        assert_int_equal(take(f, ":1.11", 1000, BUS_QUOTA_CALL, &t[BUS_CALLS_PER_CONNECTION_MAX]), 0);
        /* One back: one more. */
        bus_ticket_release(t[0]);
        t[0] = NULL;
        assert_int_equal(take(f, ":1.10", 1000, BUS_QUOTA_CALL, &t[0]), 0);
        assert_int_equal(take(f, ":1.10", 1000, BUS_QUOTA_CALL, NULL), -EBUSY);
        release_all(t, MAX_TICKETS);
        assert_int_equal(bus_quota_held(f->q), 0);
}

static void test_per_uid(void **state) {
        Fixture *f = *state;
        BusTicket *t[MAX_TICKETS] = {};
        char name[32];
        size_t n = 0;

        /* Spread over connections, each below its own bound: the uid's bound holds exactly. */
        for (unsigned i = 0; i < BUS_CALLS_PER_UID_MAX; i++) {
                snprintf(name, sizeof name, ":1.%u", 100 + i / 2);
                assert_int_equal(take(f, name, 1000, BUS_QUOTA_CALL, &t[n++]), 0);
        }
        assert_int_equal(take(f, ":1.999", 1000, BUS_QUOTA_CALL, NULL), -EBUSY);
        /* Another uid is not affected, nor is root. */
        assert_int_equal(take(f, ":1.999", 1001, BUS_QUOTA_CALL, &t[n++]), 0);
        assert_int_equal(take(f, ":1.998", 0, BUS_QUOTA_CALL, &t[n]), 0);
        assert_null(t[n]); /* root holds nothing */
        assert_int_equal(bus_quota_held(f->q), BUS_CALLS_PER_UID_MAX + 1);
        /* A connection of the first uid that went away while its calls were pending: their
         * answers release its tickets (the quota keeps nothing per connection besides them). */
        bus_ticket_release(t[0]);
        bus_ticket_release(t[1]);
        t[0] = t[1] = NULL;
        assert_int_equal(take(f, ":1.999", 1000, BUS_QUOTA_CALL, &t[0]), 0);
        assert_int_equal(take(f, ":1.999", 1000, BUS_QUOTA_CALL, &t[1]), 0);
        assert_int_equal(take(f, ":1.999", 1000, BUS_QUOTA_CALL, NULL), -EBUSY);
        release_all(t, MAX_TICKETS);
        assert_int_equal(bus_quota_held(f->q), 0);
}

static void test_agent_and_transfer(void **state) {
        Fixture *f = *state;
        BusTicket *t[MAX_TICKETS] = {};
        char name[32];
        size_t n = 0;

        /* Agent commands: BUS_AGENT_PER_UID_MAX per uid, one connection each. */
        for (unsigned i = 0; i < BUS_AGENT_PER_UID_MAX; i++) {
                snprintf(name, sizeof name, ":1.%u", 200 + i);
                assert_int_equal(take(f, name, 1000, BUS_QUOTA_AGENT, &t[n++]), 0);
        }
        assert_int_equal(take(f, ":1.300", 1000, BUS_QUOTA_AGENT, NULL), -EBUSY);
        /* Transfers: counted apart. */
        for (unsigned i = 0; i < BUS_TRANSFERS_PER_UID_MAX; i++) {
                snprintf(name, sizeof name, ":1.%u", 400 + i);
                assert_int_equal(take(f, name, 1000, BUS_QUOTA_TRANSFER, &t[n++]), 0);
        }
        assert_int_equal(take(f, ":1.500", 1000, BUS_QUOTA_TRANSFER, NULL), -EBUSY);
        /* Plain calls still go, up to the uid's bound over every kind. */
        assert_int_equal(take(f, ":1.600", 1000, BUS_QUOTA_CALL, &t[n++]), 0);
        /* Another uid has its own agent and transfer shares. */
        assert_int_equal(take(f, ":1.700", 1001, BUS_QUOTA_AGENT, &t[n++]), 0);
        assert_int_equal(take(f, ":1.701", 1001, BUS_QUOTA_TRANSFER, &t[n++]), 0);
        /* Releasing an agent ticket gives back an agent share, not a transfer one. */
        bus_ticket_release(t[0]);
        t[0] = NULL;
        assert_int_equal(take(f, ":1.500", 1000, BUS_QUOTA_TRANSFER, NULL), -EBUSY);
        assert_int_equal(take(f, ":1.300", 1000, BUS_QUOTA_AGENT, &t[0]), 0);
        release_all(t, MAX_TICKETS);
        assert_int_equal(bus_quota_held(f->q), 0);
}

static void test_uid_bound_over_kinds(void **state) {
        Fixture *f = *state;
        BusTicket *t[MAX_TICKETS] = {};
        char name[32];
        size_t n = 0;

        /* The per-uid bound counts every kind: fill it with plain calls, then agent and
         * transfer calls are Busy too although their own shares are free. */
        for (unsigned i = 0; i < BUS_CALLS_PER_UID_MAX; i++) {
                snprintf(name, sizeof name, ":1.%u", 10 + i);
                assert_int_equal(take(f, name, 1000, BUS_QUOTA_CALL, &t[n++]), 0);
        }
        assert_int_equal(take(f, ":1.99", 1000, BUS_QUOTA_AGENT, NULL), -EBUSY);
        assert_int_equal(take(f, ":1.99", 1000, BUS_QUOTA_TRANSFER, NULL), -EBUSY);
        release_all(t, MAX_TICKETS);
}

static void test_root_exempt(void **state) {
        Fixture *f = *state;

        /* Far beyond every bound, on one connection: never Busy, nothing held. */
        for (unsigned i = 0; i < 10 * BUS_CALLS_PER_UID_MAX; i++) {
                BusTicket *t = (BusTicket *) 1;
                assert_int_equal(take(f, ":1.1", 0, i % 2 ? BUS_QUOTA_AGENT : BUS_QUOTA_TRANSFER, &t), 0);
                assert_null(t);
                bus_ticket_release(t);
        }
        assert_int_equal(bus_quota_held(f->q), 0);
}

static void test_no_underflow(void **state) {
        Fixture *f = *state;
        BusTicket *t = NULL;

        /* Releasing nothing (root's NULL ticket) changes nothing. */
        bus_ticket_release(NULL);
        assert_int_equal(bus_quota_held(f->q), 0);
        assert_int_equal(take(f, ":1.5", 1000, BUS_QUOTA_CALL, &t), 0);
        assert_int_equal(bus_quota_held(f->q), 1);
        bus_ticket_release(t);
        bus_ticket_release(NULL);
        assert_int_equal(bus_quota_held(f->q), 0);
        /* After many rounds the counts are still exact: the bound is still the bound. */
        for (unsigned round = 0; round < 100; round++) {
                BusTicket *u[BUS_CALLS_PER_CONNECTION_MAX];
                for (unsigned i = 0; i < BUS_CALLS_PER_CONNECTION_MAX; i++)
                        assert_int_equal(take(f, ":1.5", 1000, BUS_QUOTA_CALL, &u[i]), 0);
                assert_int_equal(take(f, ":1.5", 1000, BUS_QUOTA_CALL, NULL), -EBUSY);
                release_all(u, BUS_CALLS_PER_CONNECTION_MAX);
        }
        assert_int_equal(bus_quota_held(f->q), 0);
}

static void test_ticket_outlives_quota(void **state) {
        Fixture *f = *state;
        BusTicket *t = NULL;

        /* A ticket released after its quota is gone (the VM's last call answered during its
         * teardown) touches nothing freed. */
        assert_int_equal(take(f, ":1.5", 1000, BUS_QUOTA_CALL, &t), 0);
        f->q = bus_quota_free(f->q);
        bus_ticket_release(t);
        assert_int_equal(bus_quota_new(&f->q), 0);
}

static void test_no_sender(void **state) {
        Fixture *f = *state;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Caller caller = { .uid = 1000, .gid = (gid_t) -1 };
        BusTicket *t[BUS_CALLS_PER_CONNECTION_MAX + 1] = {};
        sd_bus_message *m = NULL;

        /* Without a sender (peer to peer) the calls count as one connection's. */
        assert_int_equal(sd_bus_message_new_method_call(f->bus, &m, "org.vmsup.VM.t", "/org/vmsup/VM", "org.vmsup.VM1",
                                                        "GetStatus"),
                         0);
        for (unsigned i = 0; i < BUS_CALLS_PER_CONNECTION_MAX; i++)
                assert_int_equal(bus_quota_acquire(f->q, m, &caller, BUS_QUOTA_CALL, &t[i], &error), 0);
        assert_int_equal(bus_quota_acquire(f->q, m, &caller, BUS_QUOTA_CALL, &t[BUS_CALLS_PER_CONNECTION_MAX], &error),
                         -EBUSY);
        sd_bus_message_unref(m);
        release_all(t, BUS_CALLS_PER_CONNECTION_MAX + 1);
        assert_int_equal(bus_quota_held(f->q), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_per_connection, setup, teardown),
                cmocka_unit_test_setup_teardown(test_per_uid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_agent_and_transfer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_uid_bound_over_kinds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_root_exempt, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_underflow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ticket_outlives_quota, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_sender, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
