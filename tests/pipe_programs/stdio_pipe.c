// stdio into pipes: a parent writes with fprintf/fwrite into a pipe read by a forked child
// (which reads with fgets/fread), then popen in both directions. Prints one line per part; the
// output is the same on the kernel and under the shim.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINES 20000
#define BLOCK (1 << 20)

static void die(const char *what) {
    perror(what);
    exit(1);
}

// FNV-1a, to compare what was read with what was written.
static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void fill_block(unsigned char *buf) {
    uint32_t x = 12345;
    for (size_t i = 0; i < BLOCK; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
}

// The child: LINES lines from fgets, then the block from fread, then EOF.
static int child_reads(int fd) {
    FILE *in = fdopen(fd, "r");
    if (!in) die("fdopen r");
    char line[64];
    uint64_t h = 0xcbf29ce484222325ULL;
    long lines = 0, bad = 0;
    for (long i = 0; i < LINES; i++) {
        if (!fgets(line, sizeof line, in)) break;
        char want[64];
        snprintf(want, sizeof want, "line %ld of %d\n", i, LINES);
        if (strcmp(line, want) != 0) bad++;
        h = fnv(h, (unsigned char *)line, strlen(line));
        lines++;
    }
    unsigned char *buf = malloc(BLOCK + 1);
    if (!buf) die("malloc");
    size_t got = fread(buf, 1, BLOCK + 1, in);
    h = fnv(h, buf, got);
    unsigned char *want = malloc(BLOCK);
    if (!want) die("malloc");
    fill_block(want);
    int same = got == BLOCK && memcmp(buf, want, BLOCK) == 0;
    printf("child: lines=%ld bad=%ld block=%zu same=%d eof=%d hash=%016llx\n", lines, bad, got, same,
           feof(in) != 0, (unsigned long long)h);
    fflush(stdout);
    return bad == 0 && same ? 0 : 1;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned char *block = malloc(BLOCK);
    if (!block) die("malloc");
    fill_block(block);

    // 1. fork + pipe, stdio on both ends.
    int p[2];
    if (pipe(p) != 0) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(p[1]);
        _exit(child_reads(p[0]));
    }
    close(p[0]);
    FILE *out = fdopen(p[1], "w");
    if (!out) die("fdopen w");
    for (long i = 0; i < LINES; i++) fprintf(out, "line %ld of %d\n", i, LINES);
    if (fwrite(block, 1, BLOCK, out) != BLOCK) die("fwrite");
    if (fclose(out) != 0) die("fclose");
    int st;
    if (waitpid(pid, &st, 0) != pid) die("waitpid");
    printf("parent: child exit=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));

    // 2. popen "w": a shell pipeline counts what we fwrite.
    FILE *w = popen("wc -c | sed 's/^/popen w: wc=/'", "w");
    if (!w) die("popen w");
    for (int i = 0; i < 3; i++)
        if (fwrite(block, 1, BLOCK, w) != BLOCK) die("fwrite popen");
    int wst = pclose(w);
    printf("popen w: status=%d\n", wst);

    // 3. popen "r": read a pipeline's output.
    FILE *r = popen("seq 1 100000 | sort -rn", "r");
    if (!r) die("popen r");
    char line[64];
    long n = 0, sum = 0, first = -1;
    while (fgets(line, sizeof line, r)) {
        long v = atol(line);
        if (first < 0) first = v;
        sum += v;
        n++;
    }
    int rst = pclose(r);
    printf("popen r: n=%ld sum=%ld first=%ld status=%d\n", n, sum, first, rst);
    return 0;
}
