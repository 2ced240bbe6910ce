/* One shared memory life cycle per iteration: shmget(IPC_PRIVATE, 64 KiB) + shmat + touch 16
 * pages + shmdt + shmctl(IPC_RMID). Prints the median over RUNS runs of ITERS cycles as
 * "<ns per cycle> ns". Usage: shm_cycle [ITERS [RUNS]] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <time.h>
#include "bench.h"

#define SEG_SIZE 65536
#define PAGES 16

static void cycle(void)
{
    int id = shmget(IPC_PRIVATE, SEG_SIZE, IPC_CREAT | 0600);
    if (id < 0) {
        perror("shmget");
        exit(1);
    }
    volatile char *p = shmat(id, NULL, 0);
    if (p == (void *)-1) {
        perror("shmat");
        exit(1);
    }
    for (int i = 0; i < PAGES; i++) {
        /* A new segment must read as zeros, as on the kernel. */
        if (p[i * (SEG_SIZE / PAGES)] != 0) {
            fprintf(stderr, "shm_cycle: fresh segment not zeroed\n");
            exit(1);
        }
        p[i * (SEG_SIZE / PAGES)] = 1;
    }
    if (shmdt((const void *)p) < 0) {
        perror("shmdt");
        exit(1);
    }
    if (shmctl(id, IPC_RMID, NULL) < 0) {
        perror("shmctl(IPC_RMID)");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000;
    int runs = argc > 2 ? atoi(argv[2]) : 9;
    if (iters < 1 || runs < 1 || runs > 99) {
        fprintf(stderr, "usage: shm_cycle [ITERS [RUNS<=99]]\n");
        return 2;
    }
    double per_cycle[99];

    for (long i = 0; i < iters / 10 + 1; i++) /* warm up */
        cycle();
    for (int r = 0; r < runs; r++) {
        double start = now_ns();
        for (long i = 0; i < iters; i++)
            cycle();
        per_cycle[r] = (now_ns() - start) / iters;
    }
    qsort(per_cycle, runs, sizeof per_cycle[0], cmp_double);
    printf("%.0f ns\n", per_cycle[runs / 2]);
    return 0;
}
