/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays inputs without libFuzzer: each argument is a file, or a directory whose
 * files are replayed. Used by `make check` to run the corpus as a regression test
 * with any compiler; prints one line per input run and the count. */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Optional, as with libFuzzer. */
#pragma weak LLVMFuzzerInitialize

static int replay_file(const char *path) {
        FILE *f = fopen(path, "re");
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;

        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        for (;;) {
                size_t k;
                if (cap - len < 65536) {
                        uint8_t *p = realloc(buf, cap + 65536 + cap);
                        if (!p)
                                abort();
                        buf = p;
                        cap = cap + 65536 + cap;
                }
                k = fread(buf + len, 1, cap - len, f);
                len += k;
                if (k == 0)
                        break;
        }
        fclose(f);
        (void) LLVMFuzzerTestOneInput(len > 0 ? buf : (const uint8_t *) "", len);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        unsigned n = 0;
        int bad = 0;

        if (LLVMFuzzerInitialize)
                (void) LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        bad = 1;
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        struct dirent **list;
                        int m = scandir(argv[i], &list, NULL, alphasort);
                        if (m < 0) {
                                bad = 1;
                                continue;
                        }
                        for (int j = 0; j < m; j++) {
                                char *p;
                                if (list[j]->d_name[0] != '.' && asprintf(&p, "%s/%s", argv[i], list[j]->d_name) >= 0) {
                                        if (replay_file(p) < 0)
                                                bad = 1;
                                        else
                                                n++;
                                        free(p);
                                }
                                free(list[j]);
                        }
                        free(list);
                } else if (replay_file(argv[i]) < 0)
                        bad = 1;
                else
                        n++;
        }
        printf("%s: %u inputs replayed\n", argv[0], n);
        return bad;
}
