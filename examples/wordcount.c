/* wc for WASI: counts the lines, words and bytes of stdin ("-") and of each file argument.
 * Built by examples/wasi_c_program.py with `python -m ziglang cc --target=wasm32-wasi`. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int count(FILE *f, const char *name) {
    long lines = 0, words = 0, bytes = 0;
    int c, in_word = 0;
    while ((c = getc(f)) != EOF) {
        bytes++;
        if (c == '\n') lines++;
        if (isspace(c)) in_word = 0;
        else if (!in_word) { in_word = 1; words++; }
    }
    printf("%7ld %7ld %7ld %s\n", lines, words, bytes, name);
    return 0;
}

int main(int argc, char **argv) {
    int status = 0;
    if (argc < 2) return count(stdin, "-");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-")) { count(stdin, "-"); continue; }
        FILE *f = fopen(argv[i], "r");
        if (!f) { perror(argv[i]); status = 1; continue; }
        count(f, argv[i]);
        fclose(f);
    }
    return status;
}
