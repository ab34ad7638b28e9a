/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The errno → D-Bus error table and the caller's JSON commands (bus-util.c): every
 * source answers every errno, the peer's words are sanitized, messages state the
 * limits the code enforces, the policy's verdicts keep their text. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bus-errors.h"
#include "bus-util.h"

static const char *lookup(BusErrorSource source, int r, const char *cls, const char *desc, char *msg, size_t sz) {
        return bus_error_from_errno(source, r, cls, desc, msg, sz);
}

static void test_every_source_has_a_default(void **state) {
        char msg[512];

        for (BusErrorSource s = 0; s < _BUS_ERROR_SOURCE_MAX; s++) {
                const char *name = lookup(s, -E2BIG, NULL, NULL, msg, sizeof msg);
                if (s == BUS_ERROR_POLICY)
                        assert_null(name); /* sd-bus's own mapping of the errno */
                else {
                        assert_non_null(name);
                        assert_true(strlen(msg) > 0);
                        assert_null(strchr(msg, '%'));
                }
        }
}

typedef struct Row {
        BusErrorSource source;
        int error;
        const char *name;
        const char *message;
} Row;

static void test_rows(void **state) {
        static const Row rows[] = {
                { BUS_ERROR_QMP_SEND, -EBUSY, VMSUP_ERROR_BUSY, "Too many requests to QEMU in flight." },
                { BUS_ERROR_QMP_SEND, -ENOBUFS, VMSUP_ERROR_BUSY, "Too many requests to QEMU in flight." },
                { BUS_ERROR_QMP_SEND, -EINVAL, SD_BUS_ERROR_INVALID_ARGS, "Not a valid QMP command." },
                { BUS_ERROR_QMP_SEND, -ENOTCONN, VMSUP_ERROR_NOT_RUNNING, "The VM is not running." },
                { BUS_ERROR_QMP_REPLY, -ECONNRESET, VMSUP_ERROR_NOT_RUNNING, "QEMU went away before it answered." },
                { BUS_ERROR_QMP_REPLY, -ETIMEDOUT, SD_BUS_ERROR_TIMEOUT, "QEMU did not answer in time." },
                { BUS_ERROR_QMP_REPLY, -EFBIG, VMSUP_ERROR_RESPONSE_TOO_LARGE, "QEMU's answer is larger than 16 MiB." },
                { BUS_ERROR_QMP_REPLY, -ECANCELED, VMSUP_ERROR_NOT_RUNNING, "The request was cancelled." },
                { BUS_ERROR_QMP_REPLY, -EIO, SD_BUS_ERROR_FAILED, "QEMU request failed: Input/output error." },
                { BUS_ERROR_AGENT_SEND, -EBUSY, VMSUP_ERROR_BUSY, "Too many agent commands are waiting." },
                { BUS_ERROR_AGENT_SEND, -ENOTCONN, VMSUP_ERROR_AGENT_NOT_CONNECTED, "The guest agent is not connected." },
                { BUS_ERROR_AGENT_REPLY, -ETIMEDOUT, VMSUP_ERROR_AGENT_TIMEOUT, "The guest agent did not answer in time." },
                { BUS_ERROR_AGENT_REPLY, -EPROTO, VMSUP_ERROR_AGENT_PROTOCOL,
                  "The guest agent sent a reply that violates the protocol." },
                { BUS_ERROR_AGENT_REPLY, -EFBIG, VMSUP_ERROR_RESPONSE_TOO_LARGE,
                  "The agent's reply is larger than 16 MiB; use ReadFile for large data." },
                { BUS_ERROR_AGENT_REPLY, -ECANCELED, VMSUP_ERROR_AGENT_NOT_CONNECTED, "The guest agent is not connected." },
                { BUS_ERROR_AGENT_REPLY, -EIO, SD_BUS_ERROR_FAILED, "The agent request failed: Input/output error." },
        };
        char msg[512];

        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                const char *name = lookup(rows[i].source, rows[i].error, NULL, NULL, msg, sizeof msg);
                assert_string_equal(name, rows[i].name);
                assert_string_equal(msg, rows[i].message);
        }
        /* The limits the messages name are the ones enforced. */
        assert_int_equal(QMP_LINE_MAX, 16U * 1024U * 1024U);
        assert_int_equal(BUS_REPLY_MAX, 16U * 1024U * 1024U);
}

static void test_peer_words_sanitized(void **state) {
        char msg[512], long_desc[2000];

        assert_string_equal(lookup(BUS_ERROR_QMP_REPLY, -EREMOTEIO, "GenericError", "bad\x01\n\xff end", msg,
                                   sizeof msg),
                            VMSUP_ERROR_QEMU_ERROR);
        assert_string_equal(msg, "GenericError: bad??? end");
        assert_string_equal(lookup(BUS_ERROR_AGENT_REPLY, -EREMOTEIO, NULL, NULL, msg, sizeof msg),
                            VMSUP_ERROR_AGENT_ERROR);
        assert_string_equal(msg, ": ");
        memset(long_desc, 'x', sizeof long_desc - 1);
        long_desc[sizeof long_desc - 1] = '\0';
        (void) lookup(BUS_ERROR_AGENT_REPLY, -EREMOTEIO, "C", long_desc, msg, sizeof msg);
        assert_true(strlen(msg) < sizeof msg);
}

static void test_policy_verdicts(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e1 = SD_BUS_ERROR_NULL, e2 = SD_BUS_ERROR_NULL,
                                                  e3 = SD_BUS_ERROR_NULL, e4 = SD_BUS_ERROR_NULL;

        assert_true(bus_policy_error(&e1, -EACCES, "VM.Audit privilege required.") < 0);
        assert_string_equal(e1.name, SD_BUS_ERROR_ACCESS_DENIED);
        assert_string_equal(e1.message, "VM.Audit privilege required.");
        assert_true(bus_policy_error(&e2, -EINVAL, "x and xp dump at most 16384 units.") < 0);
        assert_string_equal(e2.name, SD_BUS_ERROR_INVALID_ARGS);
        assert_string_equal(e2.message, "x and xp dump at most 16384 units.");
        assert_true(bus_policy_error(&e3, -EPERM, "reserved for the supervisor") < 0);
        assert_string_equal(e3.name, SD_BUS_ERROR_ACCESS_DENIED);
        /* Anything else is sd-bus's own error for the errno. */
        assert_int_equal(bus_policy_error(&e4, -EIO, "ignored"), -EIO);
        assert_true(sd_bus_error_is_set(&e4));
        assert_int_equal(sd_bus_error_get_errno(&e4), EIO);
}

static void test_set_errno(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e1 = SD_BUS_ERROR_NULL, e2 = SD_BUS_ERROR_NULL;

        assert_true(bus_error_set_errno(&e1, BUS_ERROR_AGENT_SEND, -EBUSY, NULL, NULL) < 0);
        assert_string_equal(e1.name, VMSUP_ERROR_BUSY);
        /* Out of memory is left to sd-bus. */
        assert_int_equal(bus_error_set_errno(&e2, BUS_ERROR_AGENT_SEND, -ENOMEM, NULL, NULL), -ENOMEM);
        assert_false(sd_bus_error_is_set(&e2));
}

static void test_parse_json_command(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e1 = SD_BUS_ERROR_NULL, e2 = SD_BUS_ERROR_NULL,
                                                  e3 = SD_BUS_ERROR_NULL;
        char big[2048];
        json_t *cmd = NULL;

        assert_int_equal(bus_parse_json_command("{\"execute\":\"query-status\"}", 1024, &cmd, NULL), 0);
        assert_true(json_is_object(cmd));
        json_decref(cmd);

        memset(big, ' ', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        assert_true(bus_parse_json_command(big, 1024, &cmd, &e1) < 0);
        assert_string_equal(e1.name, SD_BUS_ERROR_INVALID_ARGS);
        assert_string_equal(e1.message, "The command is larger than 1 KiB.");

        /* The parser's text quotes the input: only the position is said. */
        assert_true(bus_parse_json_command("{\"execute\": secret}", 1024, &cmd, &e2) < 0);
        assert_string_equal(e2.name, SD_BUS_ERROR_INVALID_ARGS);
        assert_null(strstr(e2.message, "secret"));
        assert_non_null(strstr(e2.message, "line 1, column"));

        assert_true(bus_parse_json_command("{\"execute\":\"a\",\"execute\":\"b\"}", 1024, &cmd, &e3) < 0);
        assert_string_equal(e3.name, SD_BUS_ERROR_INVALID_ARGS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_source_has_a_default),
                cmocka_unit_test(test_rows),
                cmocka_unit_test(test_peer_words_sanitized),
                cmocka_unit_test(test_policy_verdicts),
                cmocka_unit_test(test_set_errno),
                cmocka_unit_test(test_parse_json_command),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
