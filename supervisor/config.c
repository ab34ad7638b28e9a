/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VM definition and the host-wide ACL: strict parsing with a precise
 * message for the first thing wrong ("FILE: $.json.path: reason"), and the QEMU
 * command line built from a definition. Definitions are written by the host's
 * administrator, but still: nothing is accepted that is not understood. */

#include <ctype.h>
#include <inttypes.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <sys/stat.h>

#include <jansson.h>

#include "config.h"

typedef struct ParseCtx {
        const char *file;
        char *error; /* first error, malloc'd */
} ParseCtx;

_printf_(3, 4) static int fail(ParseCtx *ctx, const char *jpath, const char *fmt, ...) {
        char reason[CONFIG_ERROR_MAX];
        va_list ap;

        if (ctx->error)
                return -EINVAL;
        va_start(ap, fmt);
        (void) vsnprintf(reason, sizeof reason, fmt, ap);
        va_end(ap);
        if (asprintf(&ctx->error, "%s: %s: %s", ctx->file, jpath, reason) < 0)
                ctx->error = NULL;
        return -EINVAL;
}

bool vm_name_is_valid(const char *name) {
        size_t n;

        if (!name || !(isalpha((unsigned char) name[0]) || name[0] == '_'))
                return false;
        n = strlen(name);
        if (n > VM_NAME_MAX)
                return false;
        for (size_t i = 1; i < n; i++) {
                unsigned char ch = (unsigned char) name[i];
                if (!(isascii(ch) && (isalnum(ch) || ch == '_' || ch == '-')))
                        return false;
        }
        return true;
}

/* A value that goes into QEMU's argv: printable ASCII-or-UTF-8 without control characters. */
static bool string_is_clean(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

static int check_keys(ParseCtx *ctx, json_t *obj, const char *jpath, const char * const *allowed) {
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v) {
                bool found = false;
                for (size_t i = 0; allowed[i]; i++)
                        if (streq(key, allowed[i])) {
                                found = true;
                                break;
                        }
                if (!found)
                        return fail(ctx, jpath, "unknown key \"%.64s\"", key);
        }
        return 0;
}

static int get_string(ParseCtx *ctx, json_t *obj, const char *jpath, const char *key, bool required,
                      char **ret) {
        char p[256];
        json_t *v = json_object_get(obj, key);

        snprintf(p, sizeof p, "%s.%s", jpath, key);
        if (!v) {
                if (required)
                        return fail(ctx, jpath, "missing key \"%s\"", key);
                return 0;
        }
        if (!json_is_string(v))
                return fail(ctx, p, "must be a string");
        if (json_string_length(v) != strlen(json_string_value(v)))
                return fail(ctx, p, "must not contain NUL");
        if (json_string_length(v) == 0)
                return fail(ctx, p, "must not be empty");
        if (json_string_length(v) > CONFIG_STRING_MAX)
                return fail(ctx, p, "is longer than %u characters", CONFIG_STRING_MAX);
        if (!string_is_clean(json_string_value(v)))
                return fail(ctx, p, "must not contain control characters");
        char *s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        free(*ret);
        *ret = s;
        return 1;
}

static int get_path(ParseCtx *ctx, json_t *obj, const char *jpath, const char *key, bool required,
                    char **ret) {
        int r = get_string(ctx, obj, jpath, key, required, ret);
        if (r <= 0)
                return r;
        if ((*ret)[0] != '/') {
                char p[256];
                snprintf(p, sizeof p, "%s.%s", jpath, key);
                return fail(ctx, p, "must be an absolute path");
        }
        return r;
}

static int get_bool(ParseCtx *ctx, json_t *obj, const char *jpath, const char *key, bool *ret) {
        char p[256];
        json_t *v = json_object_get(obj, key);

        if (!v)
                return 0;
        snprintf(p, sizeof p, "%s.%s", jpath, key);
        if (!json_is_boolean(v))
                return fail(ctx, p, "must be true or false");
        *ret = json_is_true(v);
        return 1;
}

static int get_uint(ParseCtx *ctx, json_t *obj, const char *jpath, const char *key, uint64_t min,
                    uint64_t max, uint64_t *ret) {
        char p[256];
        json_t *v = json_object_get(obj, key);

        if (!v)
                return 0;
        snprintf(p, sizeof p, "%s.%s", jpath, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) < min ||
            (uint64_t) json_integer_value(v) > max)
                return fail(ctx, p, "must be an integer from %" PRIu64 " to %" PRIu64, min, max);
        *ret = (uint64_t) json_integer_value(v);
        return 1;
}

/* A user or group: a name that must exist, or a decimal id. */
static int resolve_id(ParseCtx *ctx, const char *jpath, const char *s, bool group, bool must_exist,
                      uint32_t *ret) {
        uint64_t id;

        if (safe_atou64(s, &id) >= 0) {
                if (id >= UINT32_MAX)
                        return fail(ctx, jpath, "id %s is out of range", s);
                if (must_exist && (group ? getgrgid((gid_t) id) == NULL : getpwuid((uid_t) id) == NULL))
                        return fail(ctx, jpath, "%s %s does not exist", group ? "group" : "user", s);
                *ret = (uint32_t) id;
                return 0;
        }
        if (group) {
                struct group *g = getgrnam(s);
                if (!g)
                        return fail(ctx, jpath, "group \"%.64s\" does not exist", s);
                *ret = g->gr_gid;
        } else {
                struct passwd *pw = getpwnam(s);
                if (!pw)
                        return fail(ctx, jpath, "user \"%.64s\" does not exist", s);
                *ret = pw->pw_uid;
        }
        return 0;
}

static int parse_acl(ParseCtx *ctx, json_t *arr, const char *jpath, AclEntry **ret, size_t *ret_n) {
        static const char * const keys[] = { "user", "group", "privileges", NULL };
        _cleanup_free_ AclEntry *acl = NULL;
        size_t i;
        json_t *e;
        int r;

        if (!json_is_array(arr))
                return fail(ctx, jpath, "must be an array");
        if (json_array_size(arr) > CONFIG_ACL_ENTRIES_MAX)
                return fail(ctx, jpath, "has more than %u entries", CONFIG_ACL_ENTRIES_MAX);
        acl = calloc(json_array_size(arr) + 1, sizeof(AclEntry));
        if (!acl)
                return -ENOMEM;
        json_array_foreach(arr, i, e) {
                char p[128], pp[160];
                json_t *user, *group, *privs, *pv;
                size_t j;

                snprintf(p, sizeof p, "%s[%zu]", jpath, i);
                if (!json_is_object(e))
                        return fail(ctx, p, "must be an object");
                r = check_keys(ctx, e, p, keys);
                if (r < 0)
                        return r;
                user = json_object_get(e, "user");
                group = json_object_get(e, "group");
                if (!!user == !!group)
                        return fail(ctx, p, "must have exactly one of \"user\" and \"group\"");
                snprintf(pp, sizeof pp, "%s.%s", p, user ? "user" : "group");
                if (!json_is_string(user ?: group) || json_string_length(user ?: group) == 0 ||
                    json_string_length(user ?: group) != strlen(json_string_value(user ?: group)))
                        return fail(ctx, pp, "must be a non-empty string (a name or a decimal id)");
                acl[i].subject = user ? ACL_SUBJECT_USER : ACL_SUBJECT_GROUP;
                r = resolve_id(ctx, pp, json_string_value(user ?: group), !user, false, &acl[i].id);
                if (r < 0)
                        return r;

                snprintf(pp, sizeof pp, "%s.privileges", p);
                privs = json_object_get(e, "privileges");
                if (!privs)
                        return fail(ctx, p, "missing key \"privileges\"");
                if (!json_is_array(privs))
                        return fail(ctx, pp, "must be an array of privilege names");
                json_array_foreach(privs, j, pv) {
                        char ppp[192];
                        Privilege pr;

                        snprintf(ppp, sizeof ppp, "%s[%zu]", pp, j);
                        if (!json_is_string(pv))
                                return fail(ctx, ppp, "must be a string");
                        pr = privilege_from_string(json_string_value(pv));
                        if (pr < 0)
                                return fail(ctx, ppp, "unknown privilege \"%.64s\"", json_string_value(pv));
                        acl[i].privileges |= PRIV_BIT(pr);
                }
        }
        *ret_n = json_array_size(arr);
        *ret = TAKE_PTR(acl);
        return 0;
}

static DriveInterface drive_interface_from_string(const char *s) {
        static const char * const names[_DRIVE_IF_MAX] = {
                [DRIVE_IF_VIRTIO] = "virtio",
                [DRIVE_IF_IDE] = "ide",
                [DRIVE_IF_SCSI] = "scsi",
                [DRIVE_IF_NONE] = "none",
        };
        for (int i = 0; i < _DRIVE_IF_MAX; i++)
                if (streq(s, names[i]))
                        return (DriveInterface) i;
        return _DRIVE_IF_INVALID;
}

static bool drive_format_is_known(const char *s) {
        static const char * const formats[] = { "raw", "qcow2", "qed", "vmdk", "vdi", "vhdx", "vpc", NULL };
        for (size_t i = 0; formats[i]; i++)
                if (streq(s, formats[i]))
                        return true;
        return false;
}

static int parse_drives(ParseCtx *ctx, json_t *arr, VmConfig *c) {
        static const char * const keys[] = { "file", "format", "interface", "readonly", NULL };
        size_t i;
        json_t *e;
        int r;

        if (!json_is_array(arr))
                return fail(ctx, "$.qemu.drives", "must be an array");
        if (json_array_size(arr) > CONFIG_DRIVES_MAX)
                return fail(ctx, "$.qemu.drives", "has more than %u drives", CONFIG_DRIVES_MAX);
        c->drives = calloc(json_array_size(arr) + 1, sizeof(VmDrive));
        if (!c->drives)
                return -ENOMEM;
        json_array_foreach(arr, i, e) {
                VmDrive *d = &c->drives[i];
                _cleanup_free_ char *ifname = NULL;
                char p[64];

                c->n_drives = i + 1;
                snprintf(p, sizeof p, "$.qemu.drives[%zu]", i);
                if (!json_is_object(e))
                        return fail(ctx, p, "must be an object");
                r = check_keys(ctx, e, p, keys);
                if (r < 0)
                        return r;
                r = get_path(ctx, e, p, "file", true, &d->file);
                if (r < 0)
                        return r;
                r = get_string(ctx, e, p, "format", false, &d->format);
                if (r < 0)
                        return r;
                /* No probing: a raw image whose content looks like qcow2 could name a host file
                 * as its backing file. */
                if (!d->format && !(d->format = strdup("raw")))
                        return -ENOMEM;
                if (!drive_format_is_known(d->format))
                        return fail(ctx, p, "unknown format \"%.32s\" (raw, qcow2, qed, vmdk, vdi, vhdx, vpc)",
                                    d->format);
                r = get_string(ctx, e, p, "interface", false, &ifname);
                if (r < 0)
                        return r;
                d->interface = ifname ? drive_interface_from_string(ifname) : DRIVE_IF_VIRTIO;
                if (d->interface < 0)
                        return fail(ctx, p, "unknown interface \"%.32s\" (virtio, ide, scsi, none)", ifname);
                r = get_bool(ctx, e, p, "readonly", &d->readonly);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Options the supervisor owns, or that would hand someone a second monitor or a
 * debugger, or defeat the supervisor's tracking of QEMU. */
static const char * const reserved_options[] = {
        "qmp", "qmp-pretty", "monitor", "mon", "daemonize", "pidfile", "runas", "sandbox",
        "chroot", "readconfig", "set", "no-shutdown", "no-reboot", "action", "incoming", "gdb", "s", "S", "name",
        "preconfig", "qtest", "qtest-log", "trace", "D", "enable-fips", NULL,
};
/* Options whose value may name a device or chardev id. */
static const char * const id_options[] = {
        "chardev", "device", "object", "netdev", "drive", "blockdev", "global", "serial",
        "parallel", "virtioconsole", "debugcon", NULL,
};

static bool option_in(const char *opt, const char * const *list) {
        for (size_t i = 0; list[i]; i++)
                if (streq(opt, list[i]))
                        return true;
        return false;
}

/* Keys whose value names a device, chardev, bus or backend ("isa-serial.chardev"
 * in -global counts by its last component). */
static bool key_names_id(const char *key, size_t len) {
        static const char * const keys[] = { "id",     "chardev",  "bus",      "netdev", "drive", "node-name",
                                             "iothread", "mon",    "audiodev", "memdev", "fsdev", NULL };
        const char *dot = memrchr(key, '.', len);

        if (dot) {
                len -= (size_t) (dot + 1 - key);
                key = dot + 1;
        }
        for (size_t i = 0; keys[i]; i++)
                if (strlen(keys[i]) == len && memcmp(key, keys[i], len) == 0)
                        return true;
        return false;
}

/* True when a QEMU option value ("socket,id=x,path=/p", "chardev:x") refers to one of the
 * supervisor's ids. Elements are split at ',' (",," is a literal comma); only id-like keys
 * count, so a path that merely contains "vmsup-" is fine. */
static bool qemu_opts_name_reserved_id(const char *s) {
        const char *elem = s;

        for (const char *p = s;; p++) {
                if (*p == ',' && p[1] == ',') {
                        p++;
                        continue;
                }
                if (*p != ',' && *p != '\0')
                        continue;
                size_t len = (size_t) (p - elem);
                const char *eq = memchr(elem, '=', len);
                if (len >= strlen("chardev:" VMSUP_ID_PREFIX) && startswith(elem, "chardev:" VMSUP_ID_PREFIX))
                        return true;
                if (eq && key_names_id(elem, (size_t) (eq - elem)) &&
                    (size_t) (p - eq - 1) >= strlen(VMSUP_ID_PREFIX) && startswith(eq + 1, VMSUP_ID_PREFIX))
                        return true;
                if (*p == '\0')
                        return false;
                elem = p + 1;
        }
}

static int parse_extra_args(ParseCtx *ctx, json_t *arr, VmConfig *c) {
        const char *prev_opt = NULL;
        size_t i;
        json_t *e;
        int r;

        if (!json_is_array(arr))
                return fail(ctx, "$.qemu.extra_args", "must be an array of strings");
        if (json_array_size(arr) > CONFIG_EXTRA_ARGS_MAX)
                return fail(ctx, "$.qemu.extra_args", "has more than %u arguments", CONFIG_EXTRA_ARGS_MAX);
        json_array_foreach(arr, i, e) {
                char p[64];
                const char *s;

                snprintf(p, sizeof p, "$.qemu.extra_args[%zu]", i);
                if (!json_is_string(e) || json_string_length(e) != strlen(json_string_value(e)))
                        return fail(ctx, p, "must be a string");
                s = json_string_value(e);
                if (!string_is_clean(s) || json_string_length(e) > CONFIG_STRING_MAX)
                        return fail(ctx, p, "must be at most %u characters without control characters",
                                    CONFIG_STRING_MAX);
                if (s[0] == '-' && s[1] != '\0') {
                        /* QEMU accepts -opt and --opt alike. */
                        const char *opt = s + 1 + (s[1] == '-');
                        if (option_in(opt, reserved_options))
                                return fail(ctx, p, "option \"-%.32s\" is reserved for the supervisor", opt);
                        prev_opt = opt;
                } else if (prev_opt && option_in(prev_opt, id_options)) {
                        if (qemu_opts_name_reserved_id(s))
                                return fail(ctx, p, "ids starting with \"" VMSUP_ID_PREFIX
                                                    "\" are reserved for the supervisor");
                        /* "mon:" multiplexes a monitor onto a character device. */
                        if (startswith(s, "mon:") || strstr(s, "mux=on"))
                                return fail(ctx, p, "a multiplexed monitor is reserved for the supervisor");
                        prev_opt = NULL;
                } else
                        prev_opt = NULL;
                r = strv_extend(&c->extra_args, s);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_accel(ParseCtx *ctx, const char *s, VmConfig *c) {
        static const char * const known[] = { "kvm", "tcg", "xen", "qtest", NULL };
        _cleanup_free_ char *copy = strdup(s);
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        strv_free(c->accel);
        c->accel = NULL;
        for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
                if (!option_in(tok, known) || streq(tok, "qtest"))
                        return fail(ctx, "$.qemu.accel", "unknown accelerator \"%.32s\" (kvm, tcg, xen, separated by ':')",
                                    tok);
                r = strv_extend(&c->accel, tok);
                if (r < 0)
                        return r;
        }
        if (!c->accel)
                return fail(ctx, "$.qemu.accel", "must name at least one accelerator");
        return 0;
}

/* QEMU's machine names: letters, digits, '.', '_', '-', starting with a letter or digit
 * (a leading '-' would read like an option to anyone who reads the command line). */
static bool machine_name_is_valid(const char *s) {
        if (!*s || strlen(s) > 64 || !isalnum((unsigned char) *s))
                return false;
        for (const char *p = s; *p; p++)
                if (!(isascii((unsigned char) *p) && (isalnum((unsigned char) *p) || strchr("._-", *p))))
                        return false;
        return true;
}

static int parse_qemu(ParseCtx *ctx, json_t *q, VmConfig *c) {
        static const char * const keys[] = { "binary", "machine", "accel",  "cpus",       "memory_mib", "kernel",
                                             "initrd", "append",  "drives", "extra_args", "pvpanic",    NULL };
        _cleanup_free_ char *accel = NULL;
        uint64_t v;
        json_t *a;
        int r;

        if (!json_is_object(q))
                return fail(ctx, "$.qemu", "must be an object");
        r = check_keys(ctx, q, "$.qemu", keys);
        if (r < 0)
                return r;
        r = get_string(ctx, q, "$.qemu", "binary", false, &c->binary);
        if (r < 0)
                return r;
        if (c->binary[0] != '/' && strchr(c->binary, '/'))
                return fail(ctx, "$.qemu.binary", "must be an absolute path or a bare name looked up in PATH");
        r = get_string(ctx, q, "$.qemu", "machine", false, &c->machine);
        if (r < 0)
                return r;
        if (!machine_name_is_valid(c->machine))
                return fail(ctx, "$.qemu.machine", "must be a machine type name such as q35, pc or none");
        r = get_string(ctx, q, "$.qemu", "accel", false, &accel);
        if (r < 0)
                return r;
        r = parse_accel(ctx, accel ?: "kvm:tcg", c);
        if (r < 0)
                return r;
        v = c->cpus;
        r = get_uint(ctx, q, "$.qemu", "cpus", 1, 255, &v);
        if (r < 0)
                return r;
        c->cpus = (unsigned) v;
        r = get_uint(ctx, q, "$.qemu", "memory_mib", 16, 4U * 1024U * 1024U, &c->memory_mib);
        if (r < 0)
                return r;
        r = get_path(ctx, q, "$.qemu", "kernel", false, &c->kernel);
        if (r < 0)
                return r;
        r = get_path(ctx, q, "$.qemu", "initrd", false, &c->initrd);
        if (r < 0)
                return r;
        r = get_string(ctx, q, "$.qemu", "append", false, &c->append);
        if (r < 0)
                return r;
        if ((c->initrd || c->append) && !c->kernel)
                return fail(ctx, "$.qemu", "\"initrd\" and \"append\" need \"kernel\"");
        a = json_object_get(q, "drives");
        if (a) {
                r = parse_drives(ctx, a, c);
                if (r < 0)
                        return r;
        }
        a = json_object_get(q, "extra_args");
        if (a) {
                r = parse_extra_args(ctx, a, c);
                if (r < 0)
                        return r;
        }
        r = get_bool(ctx, q, "$.qemu", "pvpanic", &c->pvpanic);
        if (r < 0)
                return r;
        /* The ISA pvpanic device: q35 and pc have the bus, "none" has no bus at all. */
        if (c->pvpanic && streq(c->machine, "none"))
                return fail(ctx, "$.qemu.pvpanic", "needs a machine with an ISA bus (q35, pc), not \"none\"");
        return 0;
}

static int parse_run_as(ParseCtx *ctx, json_t *o, VmConfig *c) {
        static const char * const keys[] = { "user", "group", "groups", NULL };
        _cleanup_free_ char *user = NULL, *group = NULL;
        json_t *groups;
        uint32_t id;
        int r;

        if (!json_is_object(o))
                return fail(ctx, "$.run_as", "must be an object");
        r = check_keys(ctx, o, "$.run_as", keys);
        if (r < 0)
                return r;
        r = get_string(ctx, o, "$.run_as", "user", true, &user);
        if (r < 0)
                return r;
        r = resolve_id(ctx, "$.run_as.user", user, false, true, &id);
        if (r < 0)
                return r;
        c->run_as_uid = id;
        if (id == 0) {
                /* The explicit choice of root: QEMU keeps the supervisor's identity (uid 0, no
                 * capabilities), with no group of its own to name. */
                if (json_object_get(o, "group") || json_object_get(o, "groups"))
                        return fail(ctx, "$.run_as", "with user root QEMU keeps the supervisor's identity: no group or groups");
                c->run_as_root = true;
                return 0;
        }
        r = get_string(ctx, o, "$.run_as", "group", false, &group);
        if (r < 0)
                return r;
        if (group) {
                r = resolve_id(ctx, "$.run_as.group", group, true, true, &id);
                if (r < 0)
                        return r;
                c->run_as_gid = id;
        } else {
                struct passwd *pw = getpwuid(c->run_as_uid);
                if (!pw)
                        return fail(ctx, "$.run_as.user", "has no passwd entry to take the group from; set \"group\"");
                c->run_as_gid = pw->pw_gid;
        }
        if (c->run_as_gid == 0)
                return fail(ctx, "$.run_as.group", "must not be the root group");
        groups = json_object_get(o, "groups");
        if (groups) {
                size_t i;
                json_t *g;

                if (!json_is_array(groups) || json_array_size(groups) > CONFIG_GROUPS_MAX)
                        return fail(ctx, "$.run_as.groups", "must be an array of at most %u groups",
                                    CONFIG_GROUPS_MAX);
                c->run_as_groups = calloc(json_array_size(groups) + 1, sizeof(gid_t));
                if (!c->run_as_groups)
                        return -ENOMEM;
                json_array_foreach(groups, i, g) {
                        char p[64];
                        snprintf(p, sizeof p, "$.run_as.groups[%zu]", i);
                        if (!json_is_string(g) || json_string_length(g) != strlen(json_string_value(g)))
                                return fail(ctx, p, "must be a string");
                        r = resolve_id(ctx, p, json_string_value(g), true, true, &id);
                        if (r < 0)
                                return r;
                        if (id == 0)
                                return fail(ctx, p, "must not be the root group");
                        c->run_as_groups[c->n_run_as_groups++] = id;
                }
        }
        c->has_run_as = true;
        return 0;
}

static const char * const vm_action_table[_VM_ACTION_MAX] = {
        [VM_ACTION_DESTROY] = "destroy",
        [VM_ACTION_RESTART] = "restart",
        [VM_ACTION_PRESERVE] = "preserve",
};

const char *vm_action_to_string(VmLifecycleAction a) {
        return a >= 0 && a < _VM_ACTION_MAX ? vm_action_table[a] : NULL;
}

VmLifecycleAction vm_action_from_string(const char *s) {
        for (int i = 0; s && i < _VM_ACTION_MAX; i++)
                if (streq(s, vm_action_table[i]))
                        return (VmLifecycleAction) i;
        return _VM_ACTION_INVALID;
}

/* One of on_poweroff, on_reboot, on_crash: allowed_mask says which actions make sense for it. */
static int get_action(ParseCtx *ctx, json_t *obj, const char *key, unsigned allowed_mask, VmLifecycleAction *ret) {
        json_t *v = json_object_get(obj, key);
        char p[64];
        VmLifecycleAction a;

        if (!v)
                return 0;
        snprintf(p, sizeof p, "$.%s", key);
        a = json_is_string(v) ? vm_action_from_string(json_string_value(v)) : _VM_ACTION_INVALID;
        if (a < 0 || !(allowed_mask & (1U << a)))
                return fail(ctx, p, "must be one of%s%s%s", allowed_mask & (1U << VM_ACTION_DESTROY) ? " \"destroy\"" : "",
                            allowed_mask & (1U << VM_ACTION_RESTART) ? " \"restart\"" : "",
                            allowed_mask & (1U << VM_ACTION_PRESERVE) ? " \"preserve\"" : "");
        *ret = a;
        return 0;
}

/* "agent_file_paths": guest path prefixes, each absolute and normalised as the
 * lexical check needs it (policy_guest_path_is_normal()). An empty list is
 * allowed: no guest file for anyone but root. */
static int parse_agent_file_paths(ParseCtx *ctx, json_t *arr, VmConfig *c) {
        char p[64];
        size_t i;
        json_t *v;

        if (!json_is_array(arr))
                return fail(ctx, "$.agent_file_paths", "must be an array of guest paths");
        if (json_array_size(arr) > POLICY_GUEST_PATH_PREFIXES_MAX)
                return fail(ctx, "$.agent_file_paths", "has more than %u paths", POLICY_GUEST_PATH_PREFIXES_MAX);
        c->agent_file_paths = calloc(1, sizeof(char *));
        if (!c->agent_file_paths)
                return -ENOMEM;
        json_array_foreach(arr, i, v) {
                snprintf(p, sizeof p, "$.agent_file_paths[%zu]", i);
                if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)))
                        return fail(ctx, p, "must be a string");
                if (!policy_guest_path_is_normal(json_string_value(v)))
                        return fail(ctx, p,
                                    "must be an absolute, normalised guest path (no empty, '.' or '..' component, "
                                    "no trailing '/', no backslash, at most %u bytes)", POLICY_GUEST_PATH_MAX);
                if (strv_extend(&c->agent_file_paths, json_string_value(v)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int parse_root(ParseCtx *ctx, json_t *root, VmConfig *c) {
        static const char * const keys[] = { "qemu",      "run_as", "agent", "sandbox", "autostart",
                                             "shutdown_timeout_sec", "on_poweroff", "on_reboot", "on_crash",
                                             "console_log_kib", "acl", "agent_file_paths", NULL };
        const unsigned dr = 1U << VM_ACTION_DESTROY | 1U << VM_ACTION_RESTART;
        uint64_t v;
        json_t *o;
        int r;

        if (!json_is_object(root))
                return fail(ctx, "$", "must be a JSON object");
        r = check_keys(ctx, root, "$", keys);
        if (r < 0)
                return r;
        o = json_object_get(root, "qemu");
        if (!o)
                return fail(ctx, "$", "missing key \"qemu\"");
        r = parse_qemu(ctx, o, c);
        if (r < 0)
                return r;
        o = json_object_get(root, "run_as");
        if (o) {
                r = parse_run_as(ctx, o, c);
                if (r < 0)
                        return r;
        }
        if ((r = get_bool(ctx, root, "$", "agent", &c->agent)) < 0 ||
            (r = get_bool(ctx, root, "$", "sandbox", &c->sandbox)) < 0 ||
            (r = get_bool(ctx, root, "$", "autostart", &c->autostart)) < 0)
                return r;
        v = c->shutdown_timeout_sec;
        r = get_uint(ctx, root, "$", "shutdown_timeout_sec", 1, 3600, &v);
        if (r < 0)
                return r;
        c->shutdown_timeout_sec = (unsigned) v;
        if ((r = get_action(ctx, root, "on_poweroff", dr, &c->on_poweroff)) < 0 ||
            (r = get_action(ctx, root, "on_reboot", dr, &c->on_reboot)) < 0 ||
            (r = get_action(ctx, root, "on_crash", dr | 1U << VM_ACTION_PRESERVE, &c->on_crash)) < 0)
                return r;
        r = get_uint(ctx, root, "$", "console_log_kib", 0, VMSUP_CONSOLE_LOG_KIB_MAX, &c->console_log_kib);
        if (r < 0)
                return r;
        o = json_object_get(root, "acl");
        if (o) {
                r = parse_acl(ctx, o, "$.acl", &c->acl, &c->n_acl);
                if (r < 0)
                        return r;
        }
        o = json_object_get(root, "agent_file_paths");
        if (o) {
                r = parse_agent_file_paths(ctx, o, c);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_json(ParseCtx *ctx, const char *text, size_t len, json_t **ret) {
        json_error_t jerr;
        json_t *root;

        if (len > CONFIG_FILE_MAX)
                return fail(ctx, "$", "file is larger than %u bytes", CONFIG_FILE_MAX);
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char where[64];
                snprintf(where, sizeof where, "line %d column %d", jerr.line, jerr.column);
                return fail(ctx, where, "invalid JSON: %s", jerr.text);
        }
        *ret = root;
        return 0;
}

int vm_config_parse(const char *path, const char *name, const char *text, size_t len, VmConfig **ret,
                    char **ret_error) {
        _cleanup_(vm_config_freep) VmConfig *c = NULL;
        ParseCtx ctx = { .file = path };
        json_t *root = NULL;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (VmConfig) {
                .name = strdup(name),
                .path = strdup(path),
                .binary = strdup("qemu-system-x86_64"),
                .machine = strdup("q35"),
                .cpus = 1,
                .memory_mib = 512,
                .agent = true,
                .sandbox = true,
                .autostart = true,
                .shutdown_timeout_sec = 60,
                .on_poweroff = VM_ACTION_DESTROY,
                .on_reboot = VM_ACTION_RESTART,
                .on_crash = VM_ACTION_DESTROY,
                .console_log_kib = VMSUP_CONSOLE_LOG_KIB_DEFAULT,
        };
        if (!c->name || !c->path || !c->binary || !c->machine)
                return -ENOMEM;
        c->text = malloc(len + 1);
        if (!c->text)
                return -ENOMEM;
        memcpy(c->text, text, len);
        c->text[len] = '\0';
        c->text_len = len;

        r = load_json(&ctx, text, len, &root);
        if (r >= 0) {
                r = parse_root(&ctx, root, c);
                json_decref(root);
        }
        if (r < 0) {
                if (ctx.error)
                        *ret_error = ctx.error;
                else if (r == -ENOMEM)
                        *ret_error = strdup("out of memory");
                return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int vm_config_read_file(const char *path, char **ret, size_t *ret_len, char **ret_error) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = -errno;
                if (asprintf(ret_error, "%s: cannot open: %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                if (asprintf(ret_error, "%s: not a regular file", path) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        buf = malloc(CONFIG_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > CONFIG_FILE_MAX) {
                        if (asprintf(ret_error, "%s: $: file is larger than %u bytes", path, CONFIG_FILE_MAX) < 0)
                                *ret_error = NULL;
                        return -EFBIG;
                }
        }
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

int vm_config_load(const char *dir, const char *name, VmConfig **ret, char **ret_error) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t len;
        int r;

        if (!vm_name_is_valid(name)) {
                if (asprintf(ret_error, "invalid VM name \"%.80s\": must match " VM_NAME_RULE, name,
                             VM_NAME_MAX - 1) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        if (asprintf(&path, "%s/%s.json", dir, name) < 0)
                return -ENOMEM;
        r = vm_config_read_file(path, &text, &len, ret_error);
        if (r < 0)
                return r;
        r = vm_config_parse(path, name, text, len, ret, ret_error);
        if (r < 0)
                return r;
        r = vm_config_apply_default_user(*ret, VM_QEMU_DEFAULT_USER, ret_error);
        if (r < 0)
                *ret = vm_config_free(*ret);
        return r;
}

int vm_config_apply_default_user(VmConfig *c, const char *user, char **ret_error) {
        struct passwd *pw;

        if (c->has_run_as || c->run_as_root)
                return 0;
        errno = 0;
        pw = getpwnam(user);
        if (!pw) {
                if (asprintf(ret_error,
                             "%s: $.run_as: absent, so QEMU runs as the system user \"%s\", which does not exist: "
                             "create it (make install ships a sysusers.d entry: systemd-sysusers) or set run_as "
                             "(\"root\" to keep the supervisor's identity)",
                             c->path ?: "definition", user) < 0)
                        *ret_error = NULL;
                return errno > 0 ? -errno : -ENOENT;
        }
        if (pw->pw_uid == 0 || pw->pw_gid == 0) {
                if (asprintf(ret_error, "%s: $.run_as: the default QEMU user \"%s\" is root or in the root group",
                             c->path ?: "definition", user) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        c->run_as_uid = pw->pw_uid;
        c->run_as_gid = pw->pw_gid;
        c->has_run_as = true;
        return 0;
}

VmConfig *vm_config_free(VmConfig *c) {
        if (!c)
                return NULL;
        free(c->name);
        free(c->path);
        free(c->binary);
        free(c->machine);
        strv_free(c->accel);
        free(c->kernel);
        free(c->initrd);
        free(c->append);
        for (size_t i = 0; i < c->n_drives; i++) {
                free(c->drives[i].file);
                free(c->drives[i].format);
        }
        free(c->drives);
        strv_free(c->extra_args);
        strv_free(c->agent_file_paths);
        free(c->run_as_groups);
        free(c->acl);
        free(c->text);
        free(c);
        return NULL;
}

#define SWAP(a, b) do { typeof(a) _t = (a); (a) = (b); (b) = _t; } while (0)

void vm_config_swap_qemu(VmConfig *a, VmConfig *b) {
        SWAP(a->binary, b->binary);
        SWAP(a->machine, b->machine);
        SWAP(a->accel, b->accel);
        SWAP(a->cpus, b->cpus);
        SWAP(a->memory_mib, b->memory_mib);
        SWAP(a->kernel, b->kernel);
        SWAP(a->initrd, b->initrd);
        SWAP(a->append, b->append);
        SWAP(a->drives, b->drives);
        SWAP(a->n_drives, b->n_drives);
        SWAP(a->extra_args, b->extra_args);
        SWAP(a->has_run_as, b->has_run_as);
        SWAP(a->run_as_root, b->run_as_root);
        SWAP(a->run_as_uid, b->run_as_uid);
        SWAP(a->run_as_gid, b->run_as_gid);
        SWAP(a->run_as_groups, b->run_as_groups);
        SWAP(a->n_run_as_groups, b->n_run_as_groups);
        SWAP(a->agent, b->agent);
        SWAP(a->sandbox, b->sandbox);
        SWAP(a->text, b->text);
        SWAP(a->text_len, b->text_len);
}

void vm_config_swap_at_once(VmConfig *a, VmConfig *b) {
        SWAP(a->autostart, b->autostart);
        SWAP(a->shutdown_timeout_sec, b->shutdown_timeout_sec);
        SWAP(a->on_poweroff, b->on_poweroff);
        SWAP(a->on_reboot, b->on_reboot);
        SWAP(a->on_crash, b->on_crash);
        SWAP(a->acl, b->acl);
        SWAP(a->n_acl, b->n_acl);
        SWAP(a->agent_file_paths, b->agent_file_paths);
}

#undef SWAP

const char * const vm_config_qemu_keys[] = { "qemu", "run_as", "agent", "sandbox", NULL };

int vm_config_changed_keys(const VmConfig *old, const VmConfig *new, char ***ret) {
        _cleanup_strv_free_ char **keys = NULL;
        json_t *a, *b;
        int r = 0;

        a = json_loadb(old->text ?: "{}", old->text ? old->text_len : 2, 0, NULL);
        b = json_loadb(new->text ?: "{}", new->text ? new->text_len : 2, 0, NULL);
        if (!a || !b) {
                r = -EINVAL;
                goto finish;
        }
        keys = calloc(1, sizeof(char *));
        if (!keys) {
                r = -ENOMEM;
                goto finish;
        }
        for (const char * const *k = vm_config_qemu_keys; *k; k++) {
                json_t *x = json_object_get(a, *k), *y = json_object_get(b, *k);
                if ((!x && !y) || (x && y && json_equal(x, y)))
                        continue;
                if (strv_extend(&keys, *k) < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        *ret = TAKE_PTR(keys);
finish:
        json_decref(a);
        json_decref(b);
        return r;
}

int acl_file_parse(const char *path, const char *text, size_t len, AclEntry **ret, size_t *ret_n,
                   char **ret_error) {
        static const char * const keys[] = { "acl", NULL };
        ParseCtx ctx = { .file = path };
        json_t *root = NULL, *a;
        int r;

        r = load_json(&ctx, text, len, &root);
        if (r >= 0) {
                if (!json_is_object(root))
                        r = fail(&ctx, "$", "must be a JSON object");
                else if ((r = check_keys(&ctx, root, "$", keys)) >= 0) {
                        a = json_object_get(root, "acl");
                        if (a)
                                r = parse_acl(&ctx, a, "$.acl", ret, ret_n);
                        else {
                                *ret = NULL;
                                *ret_n = 0;
                        }
                }
                json_decref(root);
        }
        if (r < 0 && ctx.error)
                *ret_error = ctx.error;
        return r;
}

int acl_file_load(const char *path, AclEntry **ret, size_t *ret_n, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        /* No access(): the confined supervisor reloads this file, and its system call filter
         * has open, not access. */
        r = vm_config_read_file(path, &text, &len, ret_error);
        if (r == -ENOENT) {
                *ret_error = mfree(*ret_error);
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        return acl_file_parse(path, text, len, ret, ret_n, ret_error);
}

/* ---- QEMU command line ---- */

bool vm_config_has_agent_device(const VmConfig *c) {
        return c->agent && !streq(c->machine, "none");
}

/* QEMU's option parser splits on ',' and reads ",," as a literal comma. */
static char *qemu_opt_escape(const char *s) {
        size_t n = strlen(s), commas = 0;
        char *out, *o;

        for (size_t i = 0; i < n; i++)
                commas += s[i] == ',';
        out = malloc(n + commas + 1);
        if (!out)
                return NULL;
        o = out;
        for (size_t i = 0; i < n; i++) {
                *o++ = s[i];
                if (s[i] == ',')
                        *o++ = ',';
        }
        *o = '\0';
        return out;
}

int vm_config_build_argv(const VmConfig *c, const char *binary, const QemuFds *fds, char ***ret_argv) {
        _cleanup_strv_free_ char **a = NULL;
        int r = 0;

#define ADD(s)                                      \
        do {                                        \
                if ((r = strv_extend(&a, s)) < 0)   \
                        return r;                   \
        } while (0)
#define ADDF(...)                                       \
        do {                                            \
                if ((r = strv_extendf(&a, __VA_ARGS__)) < 0) \
                        return r;                       \
        } while (0)

        ADD(binary);
        ADD("-name");
        ADDF("guest=%s,debug-threads=on", c->name);
        /* Start paused: the supervisor negotiates QMP, attaches the agent, then sends "cont". */
        ADD("-S");
        ADD("-no-user-config");
        ADD("-nodefaults");
        ADD("-display");
        ADD("none");
        if (!streq(c->machine, "none")) {
                /* A screen for OpenVNC and Screenshot: a VNC display that listens nowhere
                 * (viewers arrive as descriptors through QMP add_client), on a standard VGA. */
                ADD("-vnc");
                ADD("none");
                ADD("-vga");
                ADD("std");
        }
        ADD("-machine");
        ADD(c->machine);
        for (char **acc = c->accel; acc && *acc; acc++) {
                ADD("-accel");
                ADD(*acc);
        }
        if (!streq(c->machine, "none")) {
                ADD("-smp");
                ADDF("%u", c->cpus);
        }
        ADD("-m");
        ADDF("%" PRIu64 "M", c->memory_mib);
        if (c->sandbox) {
                ADD("-sandbox");
                ADD("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
        }
        ADD("-chardev");
        /* A connection made before exec, not a listener: see vm_start() for why. */
        ADDF("socket,id=" VMSUP_QMP_ID ",fd=%d,server=off", fds->qmp_fd);
        ADD("-mon");
        ADD("chardev=" VMSUP_QMP_ID ",mode=control");
        if (!streq(c->machine, "none")) {
                /* The first serial port. Before "cont" the supervisor swaps this ring buffer
                 * for a socket it reads itself (console.c): log, history, live session. */
                ADD("-chardev");
                ADD("ringbuf,id=" VMSUP_SERIAL_ID ",size=65536");
                ADD("-serial");
                ADD("chardev:" VMSUP_SERIAL_ID);
        }
        if (vm_config_has_agent_device(c) && fds->qga_listen_fd >= 0) {
                ADD("-device");
                ADD("virtio-serial-pci,id=" VMSUP_VSERIAL_ID);
                ADD("-chardev");
                ADDF("socket,id=" VMSUP_QGA_ID ",fd=%d,server=on,wait=off", fds->qga_listen_fd);
                ADD("-device");
                ADD("virtserialport,bus=" VMSUP_VSERIAL_ID ".0,chardev=" VMSUP_QGA_ID
                    ",name=org.qemu.guest_agent.0,id=" VMSUP_QGA_PORT_ID);
        }
        if (c->kernel) {
                ADD("-kernel");
                ADD(c->kernel);
        }
        if (c->initrd) {
                ADD("-initrd");
                ADD(c->initrd);
        }
        if (c->append) {
                ADD("-append");
                ADD(c->append);
        }
        for (size_t i = 0; i < c->n_drives; i++) {
                static const char * const ifnames[_DRIVE_IF_MAX] = {
                        [DRIVE_IF_VIRTIO] = "virtio",
                        [DRIVE_IF_IDE] = "ide",
                        [DRIVE_IF_SCSI] = "scsi",
                        [DRIVE_IF_NONE] = "none",
                };
                const VmDrive *d = &c->drives[i];
                _cleanup_free_ char *file = qemu_opt_escape(d->file);
                if (!file)
                        return -ENOMEM;
                ADD("-drive");
                ADDF("file=%s,format=%s,if=%s,id=drive%zu%s", file, d->format, ifnames[d->interface], i,
                     d->readonly ? ",readonly=on" : "");
        }
        /* The guest kernel's pvpanic driver tells QEMU of a panic: a GUEST_PANICKED event, then
         * the panic action below, and on_crash decides what follows. */
        if (c->pvpanic) {
                ADD("-device");
                ADD("pvpanic,id=" VMSUP_PVPANIC_ID);
        }
        /* QEMU's defaults are reboot=reset and panic=shutdown. A guest's reboot that should
         * end the VM makes QEMU exit (SHUTDOWN reason guest-reset); a panic to preserve
         * stops the CPUs and keeps QEMU for inspection. */
        if (c->on_reboot == VM_ACTION_DESTROY) {
                ADD("-action");
                ADD("reboot=shutdown");
        }
        if (c->on_crash == VM_ACTION_PRESERVE) {
                ADD("-action");
                ADD("panic=pause");
        }
        for (char **e = c->extra_args; e && *e; e++)
                ADD(*e);
#undef ADD
#undef ADDF
        *ret_argv = TAKE_PTR(a);
        return 0;
}
