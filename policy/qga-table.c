/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest-agent permission table for org.vmsup.Agent1.Command.
 *
 * The contract's privilege table, taken literally: VM.GuestAgent.Unrestricted
 * grants every command another agent privilege grants (the power commands of
 * VM.PowerMgmt included) plus guest-exec, guest-exec-status and
 * guest-set-user-password, and nothing else. Every other state-changing
 * command is root's. The list covers QEMU 7.2's agent (qemu-ga -b '?') and the
 * read-only additions of later agents, so that a newer guest is judged by
 * name, not by the default.
 *
 * Timeouts and the no-reply flag live here too, so that one row says all the
 * supervisor needs to know about a command. Keep the table sorted in strcmp()
 * order: lookups are a binary search. */

#include "macro.h"
#include "policy.h"

#define U        PRIV_BIT(PRIV_GA_UNRESTRICTED)
#define AUDIT    (PRIV_BIT(PRIV_GA_AUDIT) | U)
#define FREAD    (PRIV_BIT(PRIV_GA_FILEREAD) | U)
#define FWRITE   (PRIV_BIT(PRIV_GA_FILEWRITE) | U)
#define FSMGMT   (PRIV_BIT(PRIV_GA_FSMGMT) | U)
#define POWER    (PRIV_BIT(PRIV_VM_POWERMGMT) | U)
#define ROOTONLY ((PrivSet) 0)

#define CMD(n, privs, ...) { .name = (n), .any_of = (privs), __VA_ARGS__ }

const QgaCommand policy_qga_commands[] = {
        CMD("guest-exec", U, .note = "runs any program in the guest"),
        CMD("guest-exec-status", U),
        CMD("guest-file-close", FREAD | FWRITE, .note = "readers and writers both close their handles"),
        CMD("guest-file-flush", FWRITE, .timeout_usec = POLICY_QGA_TIMEOUT_FILE_IO_USEC),
        CMD("guest-file-open", FREAD | FWRITE,
            .note = "FileRead for mode r or rb (the default), FileWrite for every mode that can write; other modes are refused"),
        CMD("guest-file-read", FREAD, .timeout_usec = POLICY_QGA_TIMEOUT_FILE_IO_USEC,
            .note = "count at most " STRINGIFY(QGA_FILE_READ_CHUNK_MIB) " MiB, checked before the guest sees it"),
        CMD("guest-file-seek", FREAD),
        CMD("guest-file-write", FWRITE, .timeout_usec = POLICY_QGA_TIMEOUT_FILE_IO_USEC),
        CMD("guest-fsfreeze-freeze", FSMGMT, .timeout_usec = POLICY_QGA_TIMEOUT_FSFREEZE_USEC),
        CMD("guest-fsfreeze-freeze-list", FSMGMT, .timeout_usec = POLICY_QGA_TIMEOUT_FSFREEZE_USEC),
        CMD("guest-fsfreeze-status", AUDIT),
        CMD("guest-fsfreeze-thaw", FSMGMT, .timeout_usec = POLICY_QGA_TIMEOUT_FSFREEZE_USEC),
        CMD("guest-fstrim", FSMGMT, .timeout_usec = POLICY_QGA_TIMEOUT_FSTRIM_USEC),
        CMD("guest-get-cpustats", AUDIT),
        CMD("guest-get-devices", AUDIT),
        CMD("guest-get-disks", AUDIT),
        CMD("guest-get-diskstats", AUDIT),
        CMD("guest-get-fsinfo", AUDIT),
        CMD("guest-get-host-name", AUDIT),
        CMD("guest-get-load", AUDIT, .note = "agents from QEMU 10.0"),
        CMD("guest-get-memory-block-info", AUDIT),
        CMD("guest-get-memory-blocks", AUDIT),
        CMD("guest-get-osinfo", AUDIT),
        CMD("guest-get-time", AUDIT),
        CMD("guest-get-timezone", AUDIT),
        CMD("guest-get-users", AUDIT),
        CMD("guest-get-vcpus", AUDIT),
        CMD("guest-info", AUDIT),
        CMD("guest-network-get-interfaces", AUDIT),
        CMD("guest-network-get-route", ROOTONLY,
            .note = "read-only, but the contract grants only network-get-interfaces (agents from QEMU 9.1)"),
        CMD("guest-ping", AUDIT),
        CMD("guest-set-memory-blocks", ROOTONLY, .note = "takes guest memory offline"),
        CMD("guest-set-time", ROOTONLY, .note = "sets the guest clock"),
        CMD("guest-set-user-password", U, .note = "sets any guest account's password"),
        CMD("guest-set-vcpus", ROOTONLY, .note = "takes guest CPUs offline"),
        CMD("guest-shutdown", POWER, .no_reply = true),
        CMD("guest-ssh-add-authorized-keys", ROOTONLY, .note = "grants SSH logins to the guest"),
        CMD("guest-ssh-get-authorized-keys", ROOTONLY,
            .note = "account data: not among the contract's guest-get-* reads"),
        CMD("guest-ssh-remove-authorized-keys", ROOTONLY, .note = "revokes SSH logins to the guest"),
        CMD("guest-suspend-disk", POWER, .no_reply = true),
        CMD("guest-suspend-hybrid", POWER, .no_reply = true),
        CMD("guest-suspend-ram", POWER, .no_reply = true),
        CMD("guest-sync", ROOTONLY, .reserved = true, .note = "the supervisor keeps the channel in step"),
        CMD("guest-sync-delimited", ROOTONLY, .reserved = true, .note = "the supervisor keeps the channel in step"),
};
const size_t policy_qga_commands_count = ELEMENTSOF(policy_qga_commands);
