/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* HMP command classification (policy/hmp.c): a HumanCommand line (the fuzzer's bytes up
 * to the first NUL, as a D-Bus string) judged for root and for callers with growing
 * privileges. Checked: the answers are consistent between callers (validation first,
 * monotonic in privileges), messages carry no raw bytes, the name QEMU would read is the
 * one classified, and human-monitor-command through Execute decides exactly alike. */

#include <stdlib.h>

#include "policy-callers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *line = strndup((const char *) data, size);
        json_t *cmd = NULL;
        int r[N_CALLERS];
        const char *name = NULL;
        int len;

        FUZZ_ASSERT(line);
        for (size_t i = 0; i < N_CALLERS; i++) {
                char msg[256];

                memset(msg, 'x', sizeof msg);
                r[i] = policy_check_hmp(line, &callers[i], caller_privs[i], msg, sizeof msg);
                check_message(msg, sizeof msg, r[i]);
        }
        check_answers(r);

        len = policy_hmp_command_name(line, &name);
        if (len > 0) {
                const HmpCommand *entry = policy_hmp_lookup(name, (size_t) len);
                HmpTier name_tier = policy_hmp_tier(name, (size_t) len), tier;
                const char *sub = NULL;
                size_t sub_len = 0;

                FUZZ_ASSERT(name >= line && name + len <= line + strlen(line));
                FUZZ_ASSERT(entry ? name_tier == entry->tier : name_tier == HMP_TIER_ROOT);
                /* The line's tier is the command's, except for "info SUB": SUB's tier,
                 * and deny-by-default for a subcommand the table does not know. */
                tier = policy_hmp_line_tier(line, &sub, &sub_len);
                FUZZ_ASSERT(hmp_tier_to_string(tier) != NULL);
                if (sub_len > 0) {
                        const HmpCommand *info = policy_hmp_info_lookup(sub, sub_len);
                        FUZZ_ASSERT(sub > name && sub + sub_len <= line + strlen(line));
                        FUZZ_ASSERT(info ? tier == info->tier : tier == HMP_TIER_ROOT);
                } else if (sub) /* "info /x": an empty subcommand name */
                        FUZZ_ASSERT(sub > name && tier == HMP_TIER_ROOT);
                else
                        FUZZ_ASSERT(tier == name_tier);
                /* Past validation, a caller with VM.Monitor alone gets exactly the "none" tier. */
                if (r[2] != -EINVAL)
                        FUZZ_ASSERT((r[2] == 0) == (tier == HMP_TIER_NONE));
                if (r[3] != -EINVAL)
                        FUZZ_ASSERT((r[3] == 0) == (tier != HMP_TIER_ROOT));
        } else
                FUZZ_ASSERT(len == -EINVAL && r[0] == -EINVAL && r[1] == -EINVAL);

        /* The same line through Monitor1.Execute. */
        cmd = json_pack("{s:s,s:{s:s}}", "execute", "human-monitor-command", "arguments", "command-line", line);
        if (cmd) { /* NULL when the line is not UTF-8: jansson, and so Execute, cannot carry it */
                for (size_t i = 0; i < N_CALLERS; i++) {
                        char msg[256];
                        int q = policy_check_qmp(cmd, &callers[i], caller_privs[i], msg, sizeof msg);
                        check_message(msg, sizeof msg, q);
                        FUZZ_ASSERT(q == r[i]);
                }
                json_decref(cmd);
        }
        free(line);
        return 0;
}
