/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deciding a HumanCommand line.
 *
 * The decision is only as good as our reading of the line matches QEMU's, so
 * this mirrors QEMU 7.2's monitor/hmp.c exactly:
 *
 *  - get_command_name() skips qemu_isspace() characters, then takes bytes
 *    while they are not NUL, not '/' and not qemu_isspace(). qemu_isspace(c)
 *    is isspace((unsigned char) c); in the C locale that is space, \t, \n,
 *    \v, \f and \r, so "\nquit" and "\vq" are quit (verified against the
 *    binary). Above 0x7f isspace() depends on the locale QEMU runs in (the GTK
 *    and curses front-ends call setlocale()); that is one reason non-root
 *    callers may not send such bytes at all.
 *  - the name is copied into a 256-byte buffer, i.e. cut at 255 bytes. Every
 *    name in the table is far shorter, so a cut name is unknown to QEMU and
 *    its uncut form is unknown to us: both sides refuse it.
 *  - search_dispatch_table()/hmp_compare_cmd() compare the name with each
 *    '|'-separated name of a command by length and memcmp(): exact and
 *    case-sensitive ("QUIT" is unknown, "cont|c" is unknown).
 *  - one line is one command: nothing splits on ';' or newlines (those only
 *    matter to the interactive readline, which human-monitor-command does not
 *    use); after the arguments QEMU refuses any non-space remainder
 *    ("extraneous characters"), so "info status\nquit" never runs quit.
 *  - "info" is the only command with a subcommand table. monitor_parse_command()
 *    skips white space after "info" and, when anything is left, reads the
 *    subcommand's name with the same rules from there: "info  tlb" and
 *    "info\ttlb" are info tlb, "info" alone is info's own listing, and
 *    "info/x" or "info /x" name the empty subcommand (unknown to QEMU, root's
 *    here). Each subcommand has its own tier.
 *
 * The D-Bus layer hands us a C string (D-Bus strings cannot hold NUL), and
 * QEMU's JSON parser turns \u0000 into the two bytes C0 80, never a NUL; so
 * whatever we see up to the first NUL is what QEMU parses. */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-wire.h"
#include "policy-internal.h"

/* isspace() of the C locale, spelled out so the daemon's own locale cannot
 * change our reading. */
static bool hmp_is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* What a non-root caller may put in a line: printable ASCII and tab. */
static bool hmp_char_allowed_unprivileged(unsigned char c) {
        return c == '\t' || (c >= 0x20 && c < 0x7f);
}

int policy_hmp_command_name(const char *line, const char **ret_name) {
        const char *p, *start;

        if (!line)
                return -EINVAL;

        for (p = line; hmp_is_space(*p); p++)
                ;
        for (start = p; *p != '\0' && *p != '/' && !hmp_is_space(*p); p++)
                ;

        if (p == start)
                return -EINVAL;
        /* No real command line comes near INT_MAX; refusing keeps the return
         * value honest. */
        if ((size_t) (p - start) > (size_t) INT_MAX)
                return -EINVAL;

        *ret_name = start;
        return (int) (p - start);
}

/* x and xp dump count units of memory, all into one QMP reply; the count is
 * read as monitor_parse_arguments() reads the '/' argument: after white space
 * a '/' and then decimal digits (QEMU accumulates them in an int, so a long
 * run wraps there; here it only grows past the limit). */
static bool hmp_dump_too_large(const char *name, size_t len) {
        const char *p = name + len;
        uint64_t count = 0;

        if (!((len == 1 && name[0] == 'x') || (len == 2 && name[0] == 'x' && name[1] == 'p')))
                return false;
        while (hmp_is_space(*p))
                p++;
        if (*p != '/')
                return false;
        for (p++; *p >= '0' && *p <= '9'; p++) {
                count = count * 10 + (uint64_t) (*p - '0');
                if (count > POLICY_HMP_DUMP_MAX)
                        return true;
        }
        return false;
}

typedef struct NameKey {
        const char *name;
        size_t len;
} NameKey;

/* strcmp() order for a (pointer, length) key against a NUL-terminated name. */
static int name_key_compare(const NameKey *k, const char *name) {
        size_t n = strlen(name);
        int r = memcmp(k->name, name, k->len < n ? k->len : n);

        if (r != 0)
                return r;
        return k->len < n ? -1 : k->len > n ? 1 : 0;
}

static int hmp_command_compare(const void *key, const void *member) {
        return name_key_compare(key, ((const HmpCommand *) member)->name);
}

static int hmp_alias_compare(const void *key, const void *member) {
        return name_key_compare(key, ((const HmpAlias *) member)->alias);
}

const HmpCommand *policy_hmp_lookup(const char *name, size_t len) {
        NameKey key = { name, len };
        const HmpAlias *alias;

        if (!name || len == 0)
                return NULL;

        alias = bsearch(&key, policy_hmp_aliases, policy_hmp_aliases_count, sizeof(HmpAlias),
                        hmp_alias_compare);
        if (alias)
                key = (NameKey) { alias->command, strlen(alias->command) };

        return bsearch(&key, policy_hmp_commands, policy_hmp_commands_count, sizeof(HmpCommand),
                       hmp_command_compare);
}

const HmpCommand *policy_hmp_info_lookup(const char *name, size_t len) {
        NameKey key = { name, len };

        if (!name || len == 0)
                return NULL;
        return bsearch(&key, policy_hmp_info_commands, policy_hmp_info_commands_count, sizeof(HmpCommand),
                       hmp_command_compare);
}

HmpTier policy_hmp_line_tier(const char *line, const char **ret_sub, size_t *ret_sub_len) {
        const HmpCommand *c, *sub;
        const char *name, *p;
        int len;

        if (ret_sub)
                *ret_sub = NULL;
        if (ret_sub_len)
                *ret_sub_len = 0;

        len = policy_hmp_command_name(line, &name);
        if (len < 0)
                return HMP_TIER_ROOT;
        c = policy_hmp_lookup(name, (size_t) len);
        if (!c)
                return HMP_TIER_ROOT;
        if (!streq(c->name, "info"))
                return c->tier;

        for (p = name + len; hmp_is_space(*p); p++)
                ;
        if (*p == '\0')
                return c->tier; /* "info" alone: the list of subcommands */

        /* Whatever follows is a subcommand name, possibly empty ("info /x"). */
        len = policy_hmp_command_name(p, &name);
        if (len < 0) {
                if (ret_sub)
                        *ret_sub = p;
                return HMP_TIER_ROOT;
        }
        if (ret_sub)
                *ret_sub = name;
        if (ret_sub_len)
                *ret_sub_len = (size_t) len;
        sub = policy_hmp_info_lookup(name, (size_t) len);
        return sub ? sub->tier : HMP_TIER_ROOT;
}

HmpTier policy_hmp_tier(const char *name, size_t len) {
        const HmpCommand *c = policy_hmp_lookup(name, len);

        /* Deny by default: what we do not know is root's alone. */
        return c ? c->tier : HMP_TIER_ROOT;
}

const char *hmp_tier_to_string(HmpTier t) {
        static const char *const names[_HMP_TIER_MAX] = {
                [HMP_TIER_NONE] = "none",
                [HMP_TIER_SYS_MODIFY] = "Sys.Modify",
                [HMP_TIER_ROOT] = "root",
        };

        if (t < 0 || t >= _HMP_TIER_MAX)
                return NULL;
        return names[t];
}

int policy_check_hmp(const char *line, const Caller *caller, PrivSet privs, char *msg, size_t msgsz) {
        char shown[2 * POLICY_NAME_BUFSZ], shown_sub[POLICY_NAME_BUFSZ];
        const char *name, *sub;
        size_t sub_len;
        HmpTier tier;
        bool root;
        int len;

        if (!line || !caller)
                return policy_msg(-EINVAL, msg, msgsz, "No command line given.");
        root = caller_is_root(caller);

        /* Validation first, whoever asks. The contract refuses control
         * characters and non-ASCII from non-root callers only: root may send
         * QEMU anything, and a byte QEMU reads as white space cannot widen what
         * root may do. An empty line (nothing but white space, or a name cut to
         * nothing by '/') is malformed for everyone: QEMU would only answer
         * "unknown command". */
        if (strnlen(line, POLICY_HMP_LINE_MAX + 1) > POLICY_HMP_LINE_MAX)
                return policy_msg(-EINVAL, msg, msgsz, "The command line is longer than %u bytes.",
                                  POLICY_HMP_LINE_MAX);
        /* For root too: the line travels as a JSON string, and QEMU refuses the whole
         * request for a noncharacter in it (see json_wire_check_value()). */
        if (!json_wire_text_ok(line, strlen(line)))
                return policy_msg(-EINVAL, msg, msgsz,
                                  "The command line holds a character QEMU refuses "
                                  "(a Unicode noncharacter such as U+FFFF, or invalid UTF-8).");
        if (!root)
                for (const char *p = line; *p; p++)
                        if (!hmp_char_allowed_unprivileged((unsigned char) *p))
                                return policy_msg(-EINVAL, msg, msgsz,
                                                  "Control characters and non-ASCII are not accepted in a command line.");
        len = policy_hmp_command_name(line, &name);
        if (len < 0)
                return policy_msg(-EINVAL, msg, msgsz, "The command line names no command.");
        /* For root too: a dump past the QMP client's line limit would end QEMU. */
        if (hmp_dump_too_large(name, (size_t) len))
                return policy_msg(-EINVAL, msg, msgsz, "x and xp dump at most %u units at once.",
                                  POLICY_HMP_DUMP_MAX);

        if (root)
                return policy_allow(msg, msgsz);

        if (!(privs & PRIV_BIT(PRIV_VM_MONITOR)))
                return policy_msg(-EACCES, msg, msgsz, "%s privilege required.",
                                  privilege_to_string(PRIV_VM_MONITOR));

        tier = policy_hmp_line_tier(line, &sub, &sub_len);
        policy_name_sanitize(name, (size_t) len, shown);
        /* "Command 'info tlb' ...": the subcommand is what decided. */
        if (sub) {
                policy_name_sanitize(sub, sub_len, shown_sub);
                (void) snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown), " %s", shown_sub);
        }
        switch (tier) {
        case HMP_TIER_NONE:
                return policy_allow(msg, msgsz);
        case HMP_TIER_SYS_MODIFY:
                if (privs & PRIV_BIT(PRIV_SYS_MODIFY))
                        return policy_allow(msg, msgsz);
                return policy_msg(-EACCES, msg, msgsz, "Command '%s' requires the %s privilege.", shown,
                                  privilege_to_string(PRIV_SYS_MODIFY));
        case HMP_TIER_ROOT:
        default:
                return policy_msg(-EACCES, msg, msgsz, "Command '%s' is root-only.", shown);
        }
}
