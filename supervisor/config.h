/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "policy.h"

#define VM_NAME_MAX 64
/* What vm_name_is_valid() accepts, for messages: printf format, argument VM_NAME_MAX - 1. */
#define VM_NAME_RULE "^[A-Za-z_][A-Za-z0-9_-]{0,%u}$"
/* A string in a definition (path, argument, name) is at most this long. */
#define CONFIG_STRING_MAX 4096U
/* Entries of an ACL at most. */
#define CONFIG_ACL_ENTRIES_MAX 4096U
/* Drives of a definition at most; supplementary groups of run_as at most. */
#define CONFIG_DRIVES_MAX 64U
#define CONFIG_GROUPS_MAX 64U
/* Elements of qemu.extra_args at most. */
#define CONFIG_EXTRA_ARGS_MAX 1024U
/* A definition or ACL file larger than this is refused unread. */
#define CONFIG_FILE_MAX (1024U * 1024U)
#define CONFIG_ERROR_MAX 512

/* Device and chardev ids the supervisor owns; extra_args may not use them. */
#define VMSUP_ID_PREFIX "vmsup-"
#define VMSUP_QMP_ID "vmsup-qmp"
#define VMSUP_QGA_ID "vmsup-qga"
#define VMSUP_PVPANIC_ID "vmsup-pvpanic"
#define VMSUP_QGA_PORT_ID "vmsup-qga-port"
#define VMSUP_VSERIAL_ID "vmsup-vserial"
#define VMSUP_SERIAL_ID "vmsup-serial0"
/* The serial console's log: default and largest size in KiB (definition key console_log_kib). */
#define VMSUP_CONSOLE_LOG_KIB_DEFAULT 1024U
#define VMSUP_CONSOLE_LOG_KIB_MAX (1024U * 1024U)

typedef enum DriveInterface {
        DRIVE_IF_VIRTIO,
        DRIVE_IF_IDE,
        DRIVE_IF_SCSI,
        DRIVE_IF_NONE,
        _DRIVE_IF_MAX,
        _DRIVE_IF_INVALID = -EINVAL,
} DriveInterface;

typedef struct VmDrive {
        char *file;
        char *format;
        DriveInterface interface;
        bool readonly;
} VmDrive;

/* QEMU's user when a definition has no run_as: a system user of its own, with its own group
 * (units/vmsup.sysusers, installed by make install). */
#define VM_QEMU_DEFAULT_USER "vmsup-qemu"

/* What the supervisor does when the guest powers off, reboots or crashes (libvirt's
 * on_poweroff, on_reboot, on_crash vocabulary). */
typedef enum VmLifecycleAction {
        VM_ACTION_DESTROY,  /* QEMU ends; the VM stays stopped or crashed */
        VM_ACTION_RESTART,  /* QEMU starts afresh (a reboot: the guest resets in place) */
        VM_ACTION_PRESERVE, /* on_crash only: a panicked guest stays in QEMU, paused, for inspection */
        _VM_ACTION_MAX,
        _VM_ACTION_INVALID = -EINVAL,
} VmLifecycleAction;

const char *vm_action_to_string(VmLifecycleAction a);
VmLifecycleAction vm_action_from_string(const char *s);

typedef struct VmConfig {
        char *name;
        char *path; /* the definition file */

        char *binary; /* absolute path, or a bare name resolved through PATH at start */
        char *machine;
        char **accel; /* e.g. { "kvm", "tcg", NULL }: tried in order */
        unsigned cpus;
        uint64_t memory_mib;
        char *kernel;
        char *initrd;
        char *append;
        VmDrive *drives;
        size_t n_drives;
        char **extra_args;
        bool pvpanic; /* -device pvpanic: a guest's panic reaches QEMU (GUEST_PANICKED) */

        /* QEMU's identity: run_as's ids when has_run_as (VM_QEMU_DEFAULT_USER's when the
         * definition has no run_as, see vm_config_load()); the supervisor's own (uid 0, no
         * capabilities) only when run_as names root, which sets run_as_root. */
        bool has_run_as;
        bool run_as_root;
        uid_t run_as_uid;
        gid_t run_as_gid;
        gid_t *run_as_groups; /* supplementary groups: only those listed in run_as.groups */
        size_t n_run_as_groups;

        bool agent;
        bool sandbox;
        bool autostart;
        unsigned shutdown_timeout_sec;
        VmLifecycleAction on_poweroff; /* destroy (default) or restart */
        VmLifecycleAction on_reboot;   /* restart (default) or destroy */
        VmLifecycleAction on_crash;    /* destroy (default), restart or preserve */
        uint64_t console_log_kib; /* cap of the serial console's log file; 0: no log */

        AclEntry *acl;
        size_t n_acl;

        /* Guest path prefixes non-root callers may open files under (guest-file-open,
         * ReadFile, WriteFile): a NULL-terminated list, possibly empty; NULL when the
         * definition has no "agent_file_paths" (no confinement). */
        char **agent_file_paths;

        /* The definition's bytes, as parsed: what a reload compares (PendingChanges). */
        char *text;
        size_t text_len;
} VmConfig;

/* True when name matches VM_NAME_RULE. */
bool vm_name_is_valid(const char *name);

/* Loads DIR/NAME.json. Returns 0, or -errno with a one-line message
 * "FILE: $.json.path: what is wrong" in *ret_error (malloc'd). Without run_as, QEMU's
 * identity is VM_QEMU_DEFAULT_USER's (vm_config_apply_default_user()): a host without that
 * user cannot load the definition. */
int vm_config_load(const char *dir, const char *name, VmConfig **ret, char **ret_error);
/* For a definition without run_as: QEMU runs as user, with the group of its passwd entry and
 * no supplementary groups. Does nothing when run_as was given (root included). Returns 0, or
 * -ENOENT/-EINVAL with a message naming the user in *ret_error. */
int vm_config_apply_default_user(VmConfig *c, const char *user, char **ret_error);
/* Parses a definition from memory; path is only used in messages. */
int vm_config_parse(const char *path, const char *name, const char *text, size_t len, VmConfig **ret,
                    char **ret_error);
VmConfig *vm_config_free(VmConfig *c);
/* Reads a definition or ACL file: a regular file of at most CONFIG_FILE_MAX bytes (NUL
 * appended). Returns 0, or -errno with "FILE: reason" in *ret_error. */
int vm_config_read_file(const char *path, char **ret, size_t *ret_len, char **ret_error);

/* A reload (reload.h). The top-level keys of a definition that only a new QEMU applies:
 * its command line and its identity. */
extern const char * const vm_config_qemu_keys[];
/* Those of vm_config_qemu_keys whose values differ between the two definitions' texts, as a
 * NULL-terminated list (possibly empty). Returns 0 or -errno. */
int vm_config_changed_keys(const VmConfig *old, const VmConfig *new, char ***ret);
/* Exchanges what vm_config_qemu_keys decide (with the text), or what applies at once: the
 * ACL, agent_file_paths, shutdown_timeout_sec, on_poweroff/on_reboot/on_crash, autostart. */
void vm_config_swap_qemu(VmConfig *a, VmConfig *b);
void vm_config_swap_at_once(VmConfig *a, VmConfig *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(VmConfig *, vm_config_free);

/* Loads the host-wide ACL file { "acl": [ ... ] }. A missing file is an empty ACL. */
int acl_file_load(const char *path, AclEntry **ret, size_t *ret_n, char **ret_error);
int acl_file_parse(const char *path, const char *text, size_t len, AclEntry **ret, size_t *ret_n,
                   char **ret_error);

/* The descriptors the launcher hands QEMU, by their number in QEMU's process. */
typedef struct QemuFds {
        int qmp_fd;        /* QEMU's end of a connected stream socket pair: the monitor's only connection */
        int qga_listen_fd; /* -1 without agent */
} QemuFds;

/* True when the machine type has a PCI bus for the agent's virtio-serial device. */
bool vm_config_has_agent_device(const VmConfig *c);

/* Builds QEMU's argv (argv[0] = the binary as given). Returns 0 or -ENOMEM. */
int vm_config_build_argv(const VmConfig *c, const char *binary, const QemuFds *fds, char ***ret_argv);
