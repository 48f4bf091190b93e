/*  =========================================================================
    replay - runs every file of a fuzz corpus through a libFuzzer target
    without libFuzzer, so `make check` replays each corpus with gcc under
    ASan+UBSan. A corpus directory with no files is an error: every target
    must ship seeds.

    Usage: replay_<target> DIR|FILE...
    =========================================================================
*/
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv) __attribute__ ((weak));

static int
s_run_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        fprintf (stderr, "replay: cannot open '%s'\n", path);
        return -1;
    }
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    //  An exact-size heap copy, so ASan catches any read past the end
    uint8_t *data = malloc (size > 0 ? (size_t) size : 1);
    size_t got = size > 0 ? fread (data, 1, (size_t) size, file) : 0;
    fclose (file);
    if ((long) got != size) {
        fprintf (stderr, "replay: cannot read '%s'\n", path);
        free (data);
        return -1;
    }
    LLVMFuzzerTestOneInput (data, got);
    free (data);
    return 0;
}

int
main (int argc, char *argv [])
{
    if (LLVMFuzzerInitialize) {
        LLVMFuzzerInitialize (&argc, &argv);
    }
    int files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat (argv [i], &st) == 0 && S_ISDIR (st.st_mode)) {
            struct dirent **names;
            int n = scandir (argv [i], &names, NULL, alphasort);
            for (int j = 0; j < n; j++) {
                if (names [j]->d_name [0] != '.') {
                    char path [4096];
                    snprintf (path, sizeof path, "%s/%s", argv [i], names [j]->d_name);
                    if (s_run_file (path)) {
                        return 1;
                    }
                    files++;
                }
                free (names [j]);
            }
            free (names);
        }
        else {
            if (s_run_file (argv [i])) {
                return 1;
            }
            files++;
        }
    }
    if (files == 0) {
        fprintf (stderr, "replay: no corpus files in %s\n", argc > 1 ? argv [1] : "(none)");
        return 1;
    }
    printf ("replay %s: %d inputs OK\n", strrchr (argv [0], '/') ? strrchr (argv [0], '/') + 1 : argv [0], files);
    return 0;
}
