/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Statistics, the report, child processes and /proc readers. */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ---- time and statistics ---- */

uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

void samples_add(Samples *s, uint64_t v) {
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 1024;
                uint64_t *nv = realloc(s->v, cap * sizeof *nv);
                if (!nv) {
                        fprintf(stderr, "vmsup-bench: out of memory\n");
                        abort();
                }
                s->v = nv;
                s->cap = cap;
        }
        s->v[s->n++] = v;
        s->sorted = false;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

double samples_pct(Samples *s, double p) {
        size_t rank;

        if (s->n == 0)
                return NAN;
        if (!s->sorted) {
                qsort(s->v, s->n, sizeof *s->v, cmp_u64);
                s->sorted = true;
        }
        /* Nearest rank: the smallest value with at least p % of the samples at or below it. */
        rank = (size_t) ceil(p / 100.0 * (double) s->n);
        if (rank < 1)
                rank = 1;
        if (rank > s->n)
                rank = s->n;
        return (double) s->v[rank - 1];
}

double samples_mean(const Samples *s) {
        long double sum = 0;

        if (s->n == 0)
                return NAN;
        for (size_t i = 0; i < s->n; i++)
                sum += s->v[i];
        return (double) (sum / s->n);
}

void samples_free(Samples *s) {
        free(s->v);
        *s = (Samples) {};
}

json_t *samples_json(Samples *s, double div) {
        if (s->n == 0)
                return json_pack("{s:i}", "n", 0);
        return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f}", "n", (json_int_t) s->n, "p50", samples_pct(s, 50) / div, "p99",
                         samples_pct(s, 99) / div, "mean", samples_mean(s) / div, "min", samples_pct(s, 0) / div,
                         "max", samples_pct(s, 100) / div);
}

/* ---- the report ---- */

#define ROWS_MAX 64
static Row rows[ROWS_MAX];
static size_t n_rows;
static char *notes[64];
static size_t n_notes;

char *strf(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                abort();
        va_end(ap);
        return s;
}

void row_add(const char *id, const char *figure, const char *sup, const char *raw, const char *ratio,
             const char *goal, Verdict verdict, json_t *data) {
        if (n_rows >= ROWS_MAX)
                return;
        rows[n_rows++] = (Row) {
                .id = id,
                .figure = strdup(figure),
                .sup = strdup(sup ?: "—"),
                .raw = strdup(raw ?: "—"),
                .ratio = strdup(ratio ?: "—"),
                .goal = strdup(goal ?: "—"),
                .verdict = verdict,
                .data = data ? json_incref(data) : json_object(),
        };
}

void row_error(const char *id, const char *figure, const char *goal, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        fprintf(stderr, "vmsup-bench: %s: %s\n", id, msg ?: "failed");
        json_t *data = json_pack("{s:s}", "error", msg ?: "failed");
        _cleanup_free_ char *cell = strf("error: %s", msg ?: "failed");
        row_add(id, figure, cell, NULL, NULL, goal, VERDICT_ERROR, data);
        json_decref(data);
}

void note_add(const char *fmt, ...) {
        va_list ap;
        char *s;

        if (n_notes >= ELEMENTSOF(notes))
                return;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (s)
                notes[n_notes++] = s;
}

static const char *verdict_str(Verdict v) {
        switch (v) {
        case VERDICT_MET:
                return "met";
        case VERDICT_MISSED:
                return "MISSED";
        case VERDICT_INFO:
                return "(info)";
        default:
                return "ERROR";
        }
}

void report_print(size_t *ret_missed, size_t *ret_errors) {
        size_t met = 0, missed = 0, errors = 0;

        printf("\n| figure | through vmsupd | raw baseline (same run) | ratio / overhead | goal | goal met? |\n");
        printf("|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < n_rows; i++) {
                Row *r = &rows[i];
                printf("| %s | %s | %s | %s | %s | %s |\n", r->figure, r->sup, r->raw, r->ratio, r->goal,
                       verdict_str(r->verdict));
                met += r->verdict == VERDICT_MET;
                missed += r->verdict == VERDICT_MISSED;
                errors += r->verdict == VERDICT_ERROR;
        }
        printf("\n%zu goals met, %zu missed, %zu errors.\n", met, missed, errors);
        if (n_notes > 0) {
                printf("\nNotes:\n");
                for (size_t i = 0; i < n_notes; i++)
                        printf("- %s\n", notes[i]);
        }
        fflush(stdout);
        *ret_missed = missed;
        *ret_errors = errors;
}

int report_write_json(const char *path) {
        json_auto_t *root = NULL, *arr = json_array(), *nts = json_array();
        struct timespec ts;
        char host[256] = "";
        _cleanup_free_ char *tmp = NULL;

        clock_gettime(CLOCK_REALTIME, &ts);
        (void) gethostname(host, sizeof host - 1);
        for (size_t i = 0; i < n_rows; i++) {
                Row *r = &rows[i];
                json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "id", r->id, "figure", r->figure,
                                      "vmsupd", r->sup, "raw", r->raw, "ratio", r->ratio, "goal", r->goal,
                                      "verdict", verdict_str(r->verdict), "data", r->data);
                json_array_append_new(arr, o);
        }
        for (size_t i = 0; i < n_notes; i++)
                json_array_append_new(nts, json_string(notes[i]));
        json_t *settings = json_pack("{s:i,s:i,s:i,s:i,s:f,s:i,s:i,s:i,s:i,s:i,s:i}", "warmup", (int) cfg.warmup,
                                     "iterations", (int) cfg.iterations, "batch", (int) cfg.batch, "clients",
                                     (int) cfg.clients, "seconds", cfg.seconds, "starts", (int) cfg.starts, "fleet",
                                     (int) cfg.fleet, "fleet_rounds", (int) cfg.fleet_rounds, "readfile_runs",
                                     (int) cfg.readfile_runs, "readfile_mib", (int) cfg.readfile_mib, "guest_mib",
                                     (int) cfg.guest_mib);
        root = json_pack("{s:I,s:s,s:i,s:b,s:o,s:O,s:O}", "timestamp", (json_int_t) ts.tv_sec, "host", host, "cpus",
                         (int) sysconf(_SC_NPROCESSORS_ONLN), "quick", cfg.quick, "settings", settings, "rows", arr,
                         "notes", nts);
        if (!root)
                return -ENOMEM;
        tmp = strf("%s.tmp", path);
        if (json_dump_file(root, tmp, JSON_INDENT(2)) < 0 || rename(tmp, path) < 0) {
                fprintf(stderr, "vmsup-bench: cannot write %s\n", path);
                return -EIO;
        }
        return 0;
}

/* ---- children ---- */

#define CHILDREN_MAX 1024
static volatile pid_t children[CHILDREN_MAX];

void child_track(pid_t pid) {
        for (size_t i = 0; i < CHILDREN_MAX; i++)
                if (children[i] == 0) {
                        children[i] = pid;
                        return;
                }
}

static void ready_forget(pid_t pid);

void child_untrack(pid_t pid) {
        for (size_t i = 0; i < CHILDREN_MAX; i++)
                if (children[i] == pid)
                        children[i] = 0;
        ready_forget(pid);
}

/* Async-signal-safe: also used from the SIGINT/SIGTERM handler. */
void children_kill_all(void) {
        for (size_t i = 0; i < CHILDREN_MAX; i++)
                if (children[i] > 0)
                        (void) kill(children[i], SIGKILL);
}

/* READY=1 from the supervisors (sd_notify). A thread keeps reading: an unread datagram
 * queue would block every supervisor's next sd_notify() (STATUS= on each transition). */
static int notify_fd = -1;
static pthread_t notify_thread;
static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notify_cond = PTHREAD_COND_INITIALIZER;
static pid_t ready_pids[CHILDREN_MAX];
static size_t n_ready_pids;

static void *notify_reader(void *userdata) {
        for (;;) {
                char buf[4096];
                union {
                        struct cmsghdr cm;
                        uint8_t b[CMSG_SPACE(sizeof(struct ucred))];
                } ctl;
                struct iovec iov = { buf, sizeof buf - 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                                     .msg_controllen = sizeof ctl };
                struct ucred *uc = NULL;
                ssize_t k = recvmsg(notify_fd, &mh, MSG_CMSG_CLOEXEC);
                bool is_ready = false;

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return NULL;
                }
                buf[k] = '\0';
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
                                uc = (struct ucred *) CMSG_DATA(c);
                for (char *line = buf, *nl; uc && line && *line; line = nl ? nl + 1 : NULL) {
                        nl = strchr(line, '\n');
                        if (nl)
                                *nl = '\0';
                        if (streq(line, "READY=1"))
                                is_ready = true;
                }
                if (!is_ready)
                        continue;
                pthread_mutex_lock(&notify_lock);
                if (n_ready_pids < CHILDREN_MAX)
                        ready_pids[n_ready_pids++] = uc->pid;
                pthread_cond_broadcast(&notify_cond);
                pthread_mutex_unlock(&notify_lock);
        }
}

/* A reaped child's readiness goes with it: its pid may be a later child's, and rounds of
 * starts (make stress) would fill the list. */
static void ready_forget(pid_t pid) {
        pthread_mutex_lock(&notify_lock);
        for (size_t i = 0; i < n_ready_pids;)
                if (ready_pids[i] == pid)
                        ready_pids[i] = ready_pids[--n_ready_pids];
                else
                        i++;
        pthread_mutex_unlock(&notify_lock);
}

static int notify_open(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int one = 1, fd;

        if (notify_fd >= 0)
                return 0;
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", cfg.dir);
        (void) unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        notify_fd = fd;
        if (pthread_create(&notify_thread, NULL, notify_reader, NULL) != 0) {
                close(fd);
                notify_fd = -1;
                return -EAGAIN;
        }
        return 0;
}

static bool pid_is_ready(pid_t pid) {
        for (size_t i = 0; i < n_ready_pids; i++)
                if (ready_pids[i] == pid)
                        return true;
        return false;
}

pid_t vmsupd_spawn(const char *name) {
        _cleanup_free_ char *log = strf("%s/logs/%s.log", cfg.dir, name), *vms = strf("%s/vms", cfg.dir),
                            *run = strf("%s/run", cfg.dir), *acl = strf("%s/acl.json", cfg.dir),
                            *notify = strf("NOTIFY_SOCKET=%s/notify", cfg.dir);
        pid_t parent = getpid(), pid;
        int r, logfd;

        r = notify_open();
        if (r < 0)
                return r;
        logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(logfd);
                return r;
        }
        if (pid == 0) {
                /* Never outlive the harness; the supervisor's QEMU follows it the same way. */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(1);
                int nullfd = open("/dev/null", O_RDONLY);
                if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
                        _exit(127);
                (void) syscall(SYS_close_range, 3, ~0U, 0);
                putenv(notify);
                execl(cfg.vmsupd, cfg.vmsupd, "--config-dir", vms, "--runtime-dir", run, "--acl", acl, "--bus",
                      cfg.bus_address, "--log-level", getenv("VMSUP_BENCH_LOG_LEVEL") ?: "warning", name,
                      (char *) NULL);
                _exit(127);
        }
        close(logfd);
        child_track(pid);
        return pid;
}

int vmsupd_wait_ready(const pid_t *pids, size_t n, uint64_t timeout_usec) {
        uint64_t deadline = now_ns() + timeout_usec * 1000;

        if (notify_fd < 0)
                return -EBADF;
        for (;;) {
                size_t left = 0;
                pthread_mutex_lock(&notify_lock);
                for (size_t i = 0; i < n; i++)
                        left += !pid_is_ready(pids[i]);
                if (left > 0) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 200 * 1000 * 1000;
                        if (ts.tv_nsec >= 1000000000) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000;
                        }
                        (void) pthread_cond_timedwait(&notify_cond, &notify_lock, &ts);
                }
                pthread_mutex_unlock(&notify_lock);
                if (left == 0)
                        return 0;
                /* Children that died never get ready. */
                for (size_t i = 0; i < n; i++) {
                        int st;
                        if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                                child_untrack(pids[i]);
                                return -ECHILD;
                        }
                }
                if (now_ns() >= deadline)
                        return -ETIMEDOUT;
        }
}

void processes_stop(const pid_t *pids, size_t n, uint64_t grace_usec) {
        _cleanup_free_ bool *done = calloc(n ? n : 1, sizeof(bool));
        uint64_t deadline = now_ns() + grace_usec * 1000;
        size_t left = n;
        bool killed = false;

        if (!done)
                return;
        for (size_t i = 0; i < n; i++)
                if (pids[i] > 0)
                        (void) kill(pids[i], SIGTERM);
                else {
                        done[i] = true;
                        left--;
                }
        while (left > 0) {
                for (size_t i = 0; i < n; i++) {
                        int st;
                        if (done[i])
                                continue;
                        pid_t w = waitpid(pids[i], &st, WNOHANG);
                        if (w == pids[i] || (w < 0 && errno == ECHILD)) {
                                done[i] = true;
                                left--;
                                child_untrack(pids[i]);
                        }
                }
                if (left == 0)
                        break;
                if (!killed && now_ns() >= deadline) {
                        for (size_t i = 0; i < n; i++)
                                if (!done[i])
                                        (void) kill(pids[i], SIGKILL);
                        killed = true;
                }
                usleep(10000);
        }
}

/* ---- /proc ---- */

int proc_smaps_rollup(pid_t pid, uint64_t *ret_pss_kib, uint64_t *ret_rss_kib) {
        char path[64], line[256];
        _cleanup_fclose_ FILE *f = NULL;
        uint64_t pss = 0, rss = 0;
        bool have_pss = false, have_rss = false;

        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof line, f)) {
                unsigned long long v;
                if (sscanf(line, "Pss: %llu kB", &v) == 1) {
                        pss = v;
                        have_pss = true;
                } else if (sscanf(line, "Rss: %llu kB", &v) == 1) {
                        rss = v;
                        have_rss = true;
                }
        }
        if (!have_pss || !have_rss)
                return -EIO;
        if (ret_pss_kib)
                *ret_pss_kib = pss;
        if (ret_rss_kib)
                *ret_rss_kib = rss;
        return 0;
}

int proc_status_kib(pid_t pid, const char *field, uint64_t *ret_kib) {
        char path[64], line[256];
        _cleanup_fclose_ FILE *f = NULL;
        size_t fl = strlen(field);

        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof line, f)) {
                unsigned long long v;
                if (strncmp(line, field, fl) == 0 && line[fl] == ':' && sscanf(line + fl + 1, " %llu kB", &v) == 1) {
                        *ret_kib = v;
                        return 0;
                }
        }
        return -ENOENT;
}

int proc_reset_hwm(pid_t pid) {
        char path[64];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof path, "/proc/%d/clear_refs", (int) pid);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, "5", 1) != 1)
                return -errno;
        return 0;
}

int proc_cpu_ns(pid_t pid, uint64_t *ret) {
        /* Scheduler run time of every thread (ns), more precise than stat's clock ticks. */
        char path[64];
        DIR *d;
        struct dirent *de;
        uint64_t sum = 0;
        bool any = false;

        snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char p[320];
                unsigned long long ns;
                FILE *f;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", (int) pid, de->d_name);
                f = fopen(p, "re");
                if (!f)
                        continue;
                if (fscanf(f, "%llu", &ns) == 1) {
                        sum += ns;
                        any = true;
                }
                fclose(f);
        }
        closedir(d);
        if (!any)
                return -ENOENT;
        *ret = sum;
        return 0;
}

int define_vm(const char *name, const char *json_text) {
        _cleanup_free_ char *path = strf("%s/vms/%s.json", cfg.dir, name);
        _cleanup_fclose_ FILE *f = fopen(path, "we");

        if (!f)
                return -errno;
        if (fputs(json_text, f) < 0 || fflush(f) != 0)
                return -EIO;
        return 0;
}

/* ---- CRC-32 (slicing by 8) ---- */

static uint32_t crc_table[8][256];
static bool crc_ready;

static void crc_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                crc_table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; i++)
                for (int t = 1; t < 8; t++)
                        crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
        crc_ready = true;
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t len) {
        const uint8_t *p = data;

        if (!crc_ready)
                crc_init();
        crc = ~crc;
        while (len >= 8) {
                uint32_t a, b;
                memcpy(&a, p, 4);
                memcpy(&b, p + 4, 4);
                a ^= crc;
                crc = crc_table[7][a & 0xFF] ^ crc_table[6][(a >> 8) & 0xFF] ^ crc_table[5][(a >> 16) & 0xFF] ^
                      crc_table[4][a >> 24] ^ crc_table[3][b & 0xFF] ^ crc_table[2][(b >> 8) & 0xFF] ^
                      crc_table[1][(b >> 16) & 0xFF] ^ crc_table[0][b >> 24];
                p += 8;
                len -= 8;
        }
        while (len--)
                crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
        return ~crc;
}
