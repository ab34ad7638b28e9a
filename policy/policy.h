/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Pure authorization decisions: who may do what, which limits apply.
 * No I/O, no logging, no global state: every function here is a function of
 * its arguments, so it is unit-tested exhaustively.
 *
 * Return convention of the policy_check_* functions:
 *    0        allowed
 *   -EINVAL   malformed request (InvalidArgs) — validation precedes authorization
 *   -EACCES   the caller lacks a privilege (AccessDenied); the message names it
 *   -EPERM    nobody may send this through this door (AccessDenied, "reserved
 *             for the supervisor")
 * A human message (one sentence, no raw caller bytes beyond a sanitized command
 * name) is written to msg (size msgsz, always NUL-terminated) when msg != NULL. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

typedef enum Privilege {
        PRIV_VM_AUDIT,
        PRIV_VM_POWERMGMT,
        PRIV_VM_CONSOLE,
        PRIV_VM_MONITOR,
        PRIV_SYS_MODIFY,
        PRIV_VM_MIGRATE,
        PRIV_GA_AUDIT,
        PRIV_GA_FILEREAD,
        PRIV_GA_FILEWRITE,
        PRIV_GA_FSMGMT,
        PRIV_GA_UNRESTRICTED,
        _PRIV_MAX,
        _PRIV_INVALID = -EINVAL,
} Privilege;

/* A set of privileges, bit (1 << Privilege). */
typedef uint32_t PrivSet;
#define PRIV_BIT(p) ((PrivSet) 1U << (p))
#define PRIV_ALL ((PrivSet) ((1U << _PRIV_MAX) - 1U))

/* "VM.Audit" ↔ PRIV_VM_AUDIT. from_string returns _PRIV_INVALID for unknown names. */
const char *privilege_to_string(Privilege p);
Privilege privilege_from_string(const char *s);

/* The caller as seen by the bus. */
typedef struct Caller {
        uid_t uid;            /* effective uid; 0 is root */
        gid_t gid;            /* effective (primary) gid, or (gid_t) -1 when unknown */
        const gid_t *groups;  /* supplementary groups */
        size_t n_groups;
} Caller;

static inline bool caller_is_root(const Caller *c) {
        return c->uid == 0;
}

typedef enum AclSubject {
        ACL_SUBJECT_USER,
        ACL_SUBJECT_GROUP,
} AclSubject;

typedef struct AclEntry {
        AclSubject subject;
        uint32_t id; /* uid or gid, resolved at load time */
        PrivSet privileges;
} AclEntry;

/* Union of the privileges that the entries grant to the caller (user entries
 * match the uid; group entries match the primary gid or any supplementary group).
 * Root gets PRIV_ALL. */
PrivSet policy_acl_privileges(const AclEntry *acl, size_t n_acl, const Caller *caller);

/* ---- HMP (org.vmsup.Monitor1.HumanCommand) ---- */

typedef enum HmpTier {
        HMP_TIER_NONE,       /* VM.Monitor alone */
        HMP_TIER_SYS_MODIFY, /* VM.Monitor + Sys.Modify */
        HMP_TIER_ROOT,       /* uid 0 only */
        _HMP_TIER_MAX,
        _HMP_TIER_INVALID = -EINVAL,
} HmpTier;

typedef struct HmpCommand {
        const char *name;
        HmpTier tier;
        const char *reason; /* why root-only (NULL for other tiers) */
} HmpCommand;

typedef struct HmpAlias {
        const char *alias;
        const char *command;
} HmpAlias;

/* The permission table, sorted by name. */
extern const HmpCommand policy_hmp_commands[];
extern const size_t policy_hmp_commands_count;
extern const HmpAlias policy_hmp_aliases[];
extern const size_t policy_hmp_aliases_count;

const char *hmp_tier_to_string(HmpTier t);

/* Extracts the command name as QEMU's HMP parser reads it: leading white space
 * skipped; the name ends at white space, '/' or the end. Aliases are NOT
 * resolved here. Returns the length (> 0) and stores a pointer into line;
 * -EINVAL for an empty name. */
int policy_hmp_command_name(const char *line, const char **ret_name);

/* Looks up a command name (alias resolved); unknown → HMP_TIER_ROOT. */
HmpTier policy_hmp_tier(const char *name, size_t len);

/* Full decision for a HumanCommand line from caller with privileges privs
 * (the caller must already hold VM.Monitor to get here? no: this checks it too). */
int policy_check_hmp(const char *line, const Caller *caller, PrivSet privs, char *msg, size_t msgsz);

/* ---- QMP (org.vmsup.Monitor1.Execute) ---- */

typedef enum QmpTier {
        QMP_TIER_MONITOR,    /* VM.Monitor alone: read-only queries */
        QMP_TIER_SYS_MODIFY, /* VM.Monitor + Sys.Modify */
        QMP_TIER_ROOT,
        QMP_TIER_RESERVED, /* nobody: the supervisor owns it */
        _QMP_TIER_MAX,
        _QMP_TIER_INVALID = -EINVAL,
} QmpTier;

QmpTier policy_qmp_tier(const char *execute);

/* Validates and authorizes an Execute argument that has already been parsed:
 * cmd must be an object with exactly "execute" (string) and optionally
 * "arguments" (object). human-monitor-command is judged by the HMP table on its
 * "command-line" argument. */
int policy_check_qmp(json_t *cmd, const Caller *caller, PrivSet privs, char *msg, size_t msgsz);

/* ---- Guest agent (org.vmsup.Agent1.Command) ---- */

/* guest-file-read count limit (CVE-2018-12617). */
#define QGA_FILE_READ_MAX (48U * 1024U * 1024U)

/* Validates and authorizes an agent command (same shape rules as QMP):
 * guest-sync* → -EPERM; guest-file-read with count > QGA_FILE_READ_MAX → -EINVAL;
 * guest-file-open needs FileRead or FileWrite according to its mode (missing
 * mode = "r"); unknown commands → root only. */
int policy_check_qga(json_t *cmd, const Caller *caller, PrivSet privs, char *msg, size_t msgsz);

/* The privilege a method of org.vmsup.VM1 / Agent1 needs, for the handlers. */
int policy_check_privilege(Privilege needed, const Caller *caller, PrivSet privs, char *msg, size_t msgsz);
