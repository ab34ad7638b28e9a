/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QMP and agent command validation (policy/qmp.c, policy/qga.c): the fuzzer's bytes are
 * the JSON text a caller passes to Monitor1.Execute or Agent1.Command, parsed as the bus
 * layer parses it, then judged for root and callers with growing privileges. Checked:
 * consistency between callers, messages without raw bytes, the tables' helpers agree. */

#include <stdlib.h>

#include "policy-callers.h"
#include "bus-util.h"

#define COMMAND_JSON_MAX (1024U * 1024U)

static void check(int (*fn)(json_t *, const Caller *, PrivSet, char *, size_t), json_t *cmd) {
        int r[N_CALLERS];

        for (size_t i = 0; i < N_CALLERS; i++) {
                char msg[256];

                memset(msg, 'x', sizeof msg);
                r[i] = fn(cmd, &callers[i], caller_privs[i], msg, sizeof msg);
                check_message(msg, sizeof msg, r[i]);
        }
        check_answers(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = strndup((const char *) data, size);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        json_t *cmd = NULL, *execute;
        int r;

        FUZZ_ASSERT(text);
        r = bus_parse_json_command(text, COMMAND_JSON_MAX, &cmd, &error);
        if (r < 0) {
                FUZZ_ASSERT(sd_bus_error_is_set(&error));
                sd_bus_error_free(&error);
                free(text);
                return 0;
        }
        check(policy_check_qmp, cmd);
        check(policy_check_qga, cmd);

        execute = json_object_get(cmd, "execute");
        if (json_is_string(execute)) {
                const char *name = json_string_value(execute);
                const QgaCommand *q = policy_qga_lookup(name);

                FUZZ_ASSERT(qmp_tier_to_string(policy_qmp_tier(name)) != NULL);
                FUZZ_ASSERT(policy_qga_no_reply(name) == (q && q->no_reply));
                FUZZ_ASSERT(policy_qga_timeout_usec(name) > 0);
        }
        json_decref(cmd);
        free(text);
        return 0;
}
