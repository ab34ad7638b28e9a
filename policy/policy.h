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
 * name) is written to msg (size msgsz, always NUL-terminated) when msg != NULL
 * and msgsz > 0. On success msg is set to the empty string.
 *
 * The JSON checks judge the parsed object they are given. The caller must send
 * exactly that object on (re-serialized), never the original text: a second
 * parser could read duplicate keys or odd escapes differently. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "qga-file.h"
#include "qga.h"
#include "qmp.h"

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

/* "VM.Audit" ↔ PRIV_VM_AUDIT, exactly the contract's spelling (case-sensitive).
 * to_string returns NULL for a value out of range; from_string returns
 * _PRIV_INVALID for NULL or an unknown name. */
const char *privilege_to_string(Privilege p);
Privilege privilege_from_string(const char *s);

/* The caller as seen by the bus. */
typedef struct Caller {
        uid_t uid;            /* effective uid; 0 is root */
        gid_t gid;            /* effective (primary) gid, or (gid_t) -1 when unknown */
        const gid_t *groups;  /* supplementary groups */
        size_t n_groups;
        pid_t pid;            /* the connection's process, for audit records only; 0 when unknown */
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
 * Root gets PRIV_ALL; a NULL caller gets nothing. The id (uint32_t) -1 never
 * matches: it is how "unknown" is spelled. */
PrivSet policy_acl_privileges(const AclEntry *acl, size_t n_acl, const Caller *caller);

/* The privilege a method of org.vmsup.VM1 / Agent1 needs, for the handlers.
 * Returns 0 for root or when privs holds needed; -EACCES with "VM.PowerMgmt
 * privilege required." otherwise; -EINVAL for a needed value out of range. */
int policy_check_privilege(Privilege needed, const Caller *caller, PrivSet privs, char *msg, size_t msgsz);

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
        const char *reason; /* why root-only (NULL for none; optional for Sys.Modify) */
} HmpCommand;

typedef struct HmpAlias {
        const char *alias;
        const char *command;
} HmpAlias;

/* The permission table (policy/hmp-table.c), sorted by name in strcmp() order. */
extern const HmpCommand policy_hmp_commands[];
extern const size_t policy_hmp_commands_count;
/* The subcommands of "info" (policy/hmp-table.c), sorted by name in strcmp()
 * order; a subcommand that is not here is root-only. */
extern const HmpCommand policy_hmp_info_commands[];
extern const size_t policy_hmp_info_commands_count;
/* QEMU's short names ("quit|q" in its help), sorted by alias. */
extern const HmpAlias policy_hmp_aliases[];
extern const size_t policy_hmp_aliases_count;

/* "none", "Sys.Modify", "root"; NULL out of range. */
const char *hmp_tier_to_string(HmpTier t);

/* The longest HumanCommand line accepted (for everyone): far above any real
 * command, far below what would strain the QMP output queue. */
#define POLICY_HMP_LINE_MAX (64U * 1024U)

/* The most units x and xp may dump at once ("xp /16384xb 0"), for everyone.
 * QEMU renders the whole dump into one QMP reply: at most ~130 bytes a unit
 * (disassembly), so this stays far below QMP_LINE_MAX (16 MiB), past which the
 * QMP client drops the connection and the supervisor kills QEMU. */
#define POLICY_HMP_DUMP_MAX 16384U

/* Extracts the command name as QEMU's HMP parser reads it: leading white space
 * (isspace() in the C locale) skipped; the name ends at white space, '/' or
 * the end. Aliases are NOT resolved here. Returns the length (> 0) and stores
 * a pointer into line; -EINVAL for an empty name (ret_name untouched). */
int policy_hmp_command_name(const char *line, const char **ret_name);

/* Looks up a command name of len bytes (alias resolved), case-sensitively as
 * QEMU does; unknown → HMP_TIER_ROOT. */
HmpTier policy_hmp_tier(const char *name, size_t len);

/* The table entry for a name (alias resolved), or NULL when unknown. */
const HmpCommand *policy_hmp_lookup(const char *name, size_t len);

/* The info table entry for a subcommand name of len bytes, or NULL. */
const HmpCommand *policy_hmp_info_lookup(const char *name, size_t len);

/* The tier of a whole line, as QEMU's parser dispatches it: the command's
 * tier, except for "info" followed by a subcommand, which has the
 * subcommand's tier (unknown or empty subcommand → HMP_TIER_ROOT; "info"
 * alone → HMP_TIER_NONE). When ret_sub is not NULL it is set to the
 * subcommand's name and *ret_sub_len to its length (0 when there is none). */
HmpTier policy_hmp_line_tier(const char *line, const char **ret_sub, size_t *ret_sub_len);

/* Full decision for a HumanCommand line from caller with privileges privs, in
 * this order:
 *   1. validation, for everyone: at most POLICY_HMP_LINE_MAX bytes of valid
 *      UTF-8 without noncharacters (json_wire_text_ok()); for
 *      non-root callers also no control character other than space and tab,
 *      no DEL, no byte >= 0x80; for everyone a non-empty command name, and
 *      for x and xp a count of at most POLICY_HMP_DUMP_MAX → -EINVAL;
 *   2. root → 0;
 *   3. VM.Monitor → else -EACCES;
 *   4. the line's tier (policy_hmp_line_tier()): none → 0, Sys.Modify → needs
 *      Sys.Modify (-EACCES), root → -EACCES ("root-only"). */
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

typedef struct QmpCommand {
        const char *name;
        QmpTier tier;
        const char *note; /* why this tier (shown in docs/permissions.md) */
} QmpCommand;

/* The QMP table (policy/qmp-table.c), sorted by name in strcmp() order. It
 * lists every command that is not root-only, plus root-only ones whose
 * exclusion deserves a word; anything absent is root-only. */
extern const QmpCommand policy_qmp_commands[];
extern const size_t policy_qmp_commands_count;

/* "VM.Monitor", "Sys.Modify", "root", "reserved"; NULL out of range. */
const char *qmp_tier_to_string(QmpTier t);

/* The longest command name the QMP client sends (qmp.h). */
#define POLICY_QMP_NAME_MAX QMP_COMMAND_NAME_MAX

/* Unknown (or NULL) → QMP_TIER_ROOT. human-monitor-command is QMP_TIER_ROOT
 * here; policy_check_qmp() judges it by its HMP command line instead. */
QmpTier policy_qmp_tier(const char *execute);

/* Validates and authorizes an Execute argument that has already been parsed:
 *   1. validation: cmd must be an object with exactly "execute" (a QAPI
 *      name: letters, digits, '-', '_' and '.', at most POLICY_QMP_NAME_MAX
 *      bytes) and optionally "arguments" (an object); any other key ("id",
 *      "control", "exec-oob", ...) → -EINVAL.
 *      human-monitor-command also needs arguments with a string "command-line"
 *      and optionally an integer "cpu-index", nothing else, and is then
 *      decided by policy_check_hmp() on its command line; the whole request
 *      nested at most JSON_WIRE_DEPTH_MAX (64) deep and free of Unicode
 *      noncharacters and NUL (json_wire_check_value(): what QEMU's parser
 *      would read differently);
 *   2. reserved commands → -EPERM, for root too;
 *   3. root → 0; VM.Monitor → else -EACCES; the tier → else -EACCES. */
int policy_check_qmp(json_t *cmd, const Caller *caller, PrivSet privs, char *msg, size_t msgsz);

/* ---- Guest agent (org.vmsup.Agent1.Command) ---- */

/* guest-file-read count limit (CVE-2018-12617): what qemu-ga reads at most, and the
 * largest reply the agent client frames (qga-file.h). */
#define QGA_FILE_READ_MAX QGA_FILE_READ_CHUNK_MAX

/* An agent command without its own timeout waits as long as the agent client's default. */
#define POLICY_QGA_TIMEOUT_DEFAULT_USEC ((uint64_t) QGA_DEFAULT_TIMEOUT_USEC)
/* Freezing waits for every file system to sync; thawing runs the guest's hook. */
#define POLICY_QGA_TIMEOUT_FSFREEZE_USEC (UINT64_C(60) * UINT64_C(1000000))
/* A full discard of a large or thin-provisioned volume takes minutes; the
 * agent cannot answer anything (not even a sync) until it is done. */
#define POLICY_QGA_TIMEOUT_FSTRIM_USEC   (UINT64_C(300) * UINT64_C(1000000))
/* A 48 MiB chunk is 64 MiB of base64 through a virtio-serial port. */
#define POLICY_QGA_TIMEOUT_FILE_IO_USEC  (UINT64_C(60) * UINT64_C(1000000))

typedef struct QgaCommand {
        const char *name;
        /* Any one of these privileges suffices; 0 = root only. For
         * guest-file-open the mode narrows it (see policy_check_qga()). */
        PrivSet any_of;
        bool reserved;              /* the supervisor's, never the caller's */
        bool no_reply;              /* the agent never answers on success */
        uint64_t timeout_usec;      /* 0 = POLICY_QGA_TIMEOUT_DEFAULT_USEC */
        const char *note;           /* shown in docs/permissions.md; may be NULL */
} QgaCommand;

/* The agent table (policy/qga-table.c), sorted by name in strcmp() order;
 * anything absent is root-only. */
extern const QgaCommand policy_qga_commands[];
extern const size_t policy_qga_commands_count;

/* The table entry for execute, or NULL when unknown. */
const QgaCommand *policy_qga_lookup(const char *execute);

/* Validates and authorizes an agent command:
 *   1. validation (same shape, depth and character rules as QMP); guest-file-read with a "count"
 *      that is not an integer in 0..QGA_FILE_READ_MAX → -EINVAL;
 *      guest-file-open with a "mode" that is not one of the agent's fopen()
 *      modes → -EINVAL;
 *   2. guest-sync* → -EPERM, for root too;
 *   3. root → 0;
 *   4. the command's privileges; guest-file-open needs FileRead for "r"/"rb"
 *      (the default) and FileWrite for any mode that can write; unknown
 *      commands are root-only (-EACCES). */
int policy_check_qga(json_t *cmd, const Caller *caller, PrivSet privs, char *msg, size_t msgsz);

/* Agent1.ReadFile (write == false) needs VM.GuestAgent.FileRead, WriteFile needs FileWrite;
 * VM.GuestAgent.Unrestricted grants both (it may open, read and write any guest file through
 * Command anyway). A refusal names the specific privilege. */
int policy_check_file_transfer(bool write, const Caller *caller, PrivSet privs, char *msg, size_t msgsz);

/* ---- Guest file paths (the definition's "agent_file_paths") ----
 *
 * A VM may confine the guest files non-root callers open (guest-file-open
 * through Command, ReadFile, WriteFile) to a list of path prefixes. The check
 * is lexical, and it is all that can be checked from outside the guest: the
 * guest resolves the path, and qemu-ga 7.2 opens it with plain open(), which
 * follows symlinks (there is no O_NOFOLLOW or openat2() RESOLVE_BENEATH
 * option). A symlink that the guest itself put below a prefix leads wherever
 * the guest wants; the confinement holds against the caller, not against the
 * guest. */

#define POLICY_GUEST_PATH_MAX 4096U
/* Most prefixes a definition may list. */
#define POLICY_GUEST_PATH_PREFIXES_MAX 64U

/* True when path is what the confinement accepts: 1 to POLICY_GUEST_PATH_MAX
 * bytes, absolute ('/' first), and normalised: no empty component ("//", a
 * trailing '/' except for "/" itself), no component made only of dots and
 * spaces (".", "..", "...", ". ": Windows strips trailing dots and spaces, so
 * ".. " would be ".." there), no backslash (a separator on Windows). Any
 * other byte, non-UTF-8 included, is part of a name. NULL → false. */
bool policy_guest_path_is_normal(const char *path);

/* True when path (normal) is prefix (normal) or lies below it: equal, or
 * prefix followed by '/' in path. "/" contains every normal path; "/data"
 * does not contain "/database". */
bool policy_guest_path_within(const char *path, const char *prefix);

/* Whether caller may open path in the guest. prefixes is the VM's list (a
 * NULL-terminated array), or NULL when the VM does not confine file access.
 *   root, or prefixes NULL → 0;
 *   path not normal → -EINVAL;
 *   path within one of the prefixes → 0; otherwise (an empty list included)
 *   → -EACCES. */
int policy_check_guest_path(const char *path, char *const *prefixes, const Caller *caller, char *msg,
                            size_t msgsz);

/* policy_check_qga(), then for guest-file-open policy_check_guest_path() on
 * its "path" (under confinement a missing path, or one that is not a string
 * without NUL, is -EINVAL). Agent1.Command decides with this. */
int policy_check_qga_confined(json_t *cmd, const Caller *caller, PrivSet privs, char *const *prefixes, char *msg,
                              size_t msgsz);

/* guest-shutdown and guest-suspend-* never reply on success. NULL/unknown → false. */
bool policy_qga_no_reply(const char *execute);

/* How long to wait for the agent's answer to execute (unknown → default). */
uint64_t policy_qga_timeout_usec(const char *execute);

/* ---- Documentation ---- */

/* Renders the three tables as the Markdown of docs/permissions.md.
 * Returns 0 and a malloc()ed string in *ret, or -ENOMEM (*ret untouched). */
int policy_render_markdown(char **ret);
/* The same tables as roff (man macros), for vmsup.json(5). */
int policy_render_roff(char **ret);
