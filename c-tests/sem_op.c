/* semop/semtimedop without blocking: all-or-nothing in order, IPC_NOWAIT,
 * wait-for-zero, repeated semaphores in one call, ERANGE/EFBIG/E2BIG/EINVAL/
 * EFAULT/EACCES and which error wins, timeout validation, sempid and otime.
 * Blocking and wake-ups are in sem_wait.c. */
#include "common.h"

static int g_id;

static void nobody_ops(void *arg)
{
	int id = *(int *)arg;
	printf(" as nobody on 0604 (read only):\n");
	OPS(id, { 0, 0, 0 });
	OPS(id, { 1, 0, IPC_NOWAIT });
	OPS(id, { 0, 1, 0 });
	OPS(id, { 0, 0, 0 }, { 1, -1, 0 });
	OPS(id, { 9, 1, 0 });
	OPS(id, { 9, 0, 0 });
	OPS(id, { 0, 1, SEM_UNDO });
}

static void nobody_ops_w(void *arg)
{
	int id = *(int *)arg;
	printf(" as nobody on 0602 (write only):\n");
	OPS(id, { 0, 0, 0 });
	OPS(id, { 0, 0, IPC_NOWAIT });
	OPS(id, { 0, 0, 0 }, { 1, 1, 0 });
	OPS(id, { 0, 1, 0 });
	OPS(id, { 0, -1, 0 }, { 0, 0, IPC_NOWAIT });
	OPS(id, { 1, -1, 0 }, { 1, 0, IPC_NOWAIT });
	OPS(id, { 1, 0, IPC_NOWAIT }, { 0, 1, 0 });
}

static void child_zero(void *arg)
{
	(void)arg;
	OPS(g_id, { 1, 0, 0 });
}

int main(void)
{
	setup();
	alarm(20);
	int id, id2;
	time_t ot, ct;
	struct timespec ts;
	struct sembuf sb[600];

	CASE("op_basic");
	id = g_id = SHOW(semget(IPC_PRIVATE, 4, 0600));
	OPS(id, { 0, 2, 0 });
	show_sem(id, 0);
	OPS(id, { 0, -1, 0 });
	OPS(id, { 0, 0, IPC_NOWAIT });
	OPS(id, { 0, -2, IPC_NOWAIT });
	OPS(id, { 1, 0, 0 });
	OPS(id, { 2, 5, 0 }, { 3, 7, 0 }, { 2, -3, 0 });
	show_vals(id);
	OPS(id, { 0, -1, 0 }, { 2, -2, 0 }, { 3, -7, 0 }, { 1, 0, 0 });
	show_vals(id);

	CASE("op_all_or_nothing");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 0, 5, 2 }));
	OPS(id, { 0, -1, 0 }, { 2, 3, 0 }, { 1, -1, IPC_NOWAIT });
	show_vals(id);
	OPS(id, { 2, -1, 0 }, { 3, 0, IPC_NOWAIT });
	show_vals(id);
	OPS(id, { 3, -2, 0 }, { 2, -6, IPC_NOWAIT }, { 0, 1, 0 });
	show_vals(id);
	OPS(id, { 3, -2, 0 }, { 2, -5, IPC_NOWAIT }, { 0, 1, 0 });
	show_vals(id);

	CASE("op_nowait_of_blocking_sop");
	/* The flag of the operation that cannot proceed decides. */
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 0, 0, 0 }));
	OPS(id, { 0, -1, 0 }, { 1, -1, IPC_NOWAIT });
	OPS(id, { 0, -1, IPC_NOWAIT }, { 1, 0, 0 }, { 2, 0, 0 }, { 3, -1, IPC_NOWAIT });
	show_vals(id);

	CASE("op_erange");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 32767, 0, 32000, 0 }));
	OPS(id, { 0, 1, 0 });
	OPS(id, { 2, 767, 0 });
	OPS(id, { 2, 1, 0 });
	OPS(id, { 1, 32767, 0 });
	OPS(id, { 1, 1, 0 });
	show_vals(id);
	printf(" the first failing operation decides:\n");
	OPS(id, { 3, -1, IPC_NOWAIT }, { 0, 1, 0 });
	OPS(id, { 0, 1, 0 }, { 3, -1, IPC_NOWAIT });
	OPS(id, { 3, 0, 0 }, { 0, 1, IPC_NOWAIT }, { 1, -1, IPC_NOWAIT });
	OPS(id, { 1, 0, IPC_NOWAIT }, { 0, 1, 0 });
	show_vals(id);

	CASE("op_efbig");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 1, 1, 1 }));
	OPS(id, { 4, 1, 0 });
	OPS(id, { 4, 0, 0 });
	OPS(id, { 0, -1, 0 }, { 65535, 0, IPC_NOWAIT });
	OPS(id, { 1, -1, 0 }, { 3, 1, 0 }, { 100, -1, 0 });
	show_vals(id);

	CASE("op_einval");
	SHOW(semop(-1, (struct sembuf[]){ { 0, 1, 0 } }, 1));
	SHOW(semop(INT_MIN, (struct sembuf[]){ { 0, 1, 0 } }, 1));
	SHOW(semop(12345, (struct sembuf[]){ { 0, 1, 0 } }, 1));
	SHOW(semop(id + 32768, (struct sembuf[]){ { 0, 1, 0 } }, 1));
	SHOW(semop(id, (struct sembuf[]){ { 0, 1, 0 } }, 0));
	SHOW(semop(-1, NULL, 0));
	SHOW(semop(12345, NULL, 0));
	id2 = SHOW(semget(IPC_PRIVATE, 1, 0600));
	SHOW(semctl(id2, 0, IPC_RMID));
	SHOW(semop(id2, (struct sembuf[]){ { 0, 1, 0 } }, 1));
	SHOW(semop(id2, (struct sembuf[]){ { 0, 1, SEM_UNDO } }, 1));
	SHOW(semop(id2, (struct sembuf[]){ { 7, 1, 0 } }, 1));
	show_vals(id);

	CASE("op_e2big");
	for (int i = 0; i < 600; i++)
		sb[i] = (struct sembuf){ 1, 0, IPC_NOWAIT };
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 0, 0, 0, 0 }));
	SHOW(semop(id, sb, 500));
	SHOW(semop(id, sb, 501));
	SHOW(semop(id, sb, 600));
	SHOW(semop(id, NULL, 501));
	SHOW(semop(12345, sb, 501));
	SHOW(semop(-1, sb, 501));
	SHOW(syscall(SYS_semop, id, NULL, (unsigned)-1));
	for (int i = 0; i < 500; i++)
		sb[i] = (struct sembuf){ (unsigned short)(i % 4), 1, 0 };
	SHOW(semop(id, sb, 500));
	show_vals(id);

	CASE("op_efault");
	SHOW(syscall(SYS_semop, id, NULL, 1));
	SHOW(syscall(SYS_semop, id, (void *)8, 1));
	SHOW(syscall(SYS_semop, 12345, NULL, 1));
	SHOW(syscall(SYS_semop, -1, NULL, 1));
	{
		struct sembuf *e = (struct sembuf *)io_edge(sizeof(struct sembuf));
		e[0] = (struct sembuf){ 0, 1, 0 };
		SHOW(semop(id, e, 1));
		e = (struct sembuf *)io_edge(sizeof(struct sembuf) + 4);
		e[0] = (struct sembuf){ 0, 1, 0 };
		SHOW(semop(id, e, 2));
		e = (struct sembuf *)io_edge(sizeof(struct sembuf) * 2);
		e[0] = (struct sembuf){ 0, 1, 0 };
		e[1] = (struct sembuf){ 1, 1, 0 };
		SHOW(semop(id, e, 2));
		SHOW(semop(id, e, 3));
		SHOW(semop(id, e, 501));
	}
	show_vals(id);

	CASE("op_repeated_semaphore");
	/* Several operations on one semaphore apply one after the other. */
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 0, 0, 0 }));
	OPS(id, { 0, 1, 0 }, { 0, -2, 0 });
	show_vals(id);
	OPS(id, { 0, -1, IPC_NOWAIT }, { 0, 1, 0 });
	OPS(id, { 0, 1, 0 }, { 0, 0, IPC_NOWAIT });
	show_vals(id);
	OPS(id, { 0, 0, 0 }, { 0, 1, 0 });
	show_vals(id);
	OPS(id, { 0, 32767, 0 }, { 0, -32767, 0 });
	OPS(id, { 0, -1, 0 }, { 0, 32767, 0 });
	show_vals(id);
	OPS(id, { 0, -32767, 0 }, { 0, 5, 0 }, { 0, -2, 0 }, { 0, -3, 0 }, { 0, 0, 0 });
	show_vals(id);
	OPS(id, { 1, 1, 0 }, { 2, 1, 0 }, { 1, 1, 0 }, { 2, -2, IPC_NOWAIT });
	show_vals(id);

	CASE("op_permissions");
	id2 = SHOW(semget(IPC_PRIVATE, 2, 0604));
	SHOW(semctl(id2, 1, SETVAL, 1));
	in_child(NOBODY, nobody_ops, &id2);
	show_vals(id2);
	SHOW(semctl(id2, 0, IPC_RMID));
	id2 = SHOW(semget(IPC_PRIVATE, 2, 0602));
	SHOW(semctl(id2, 1, SETVAL, 1));
	in_child(NOBODY, nobody_ops_w, &id2);
	show_vals(id2);
	SHOW(semctl(id2, 0, IPC_RMID));

	CASE("op_sempid_otime");
	id2 = SHOW(semget(IPC_PRIVATE, 3, 0600));
	sem_stat_show(id2);
	OPS(id2, { 0, -1, IPC_NOWAIT });
	OPS(id2, { 2, 1, 0 }, { 0, -1, IPC_NOWAIT });
	OPS(id2, { 5, 1, 0 });
	sem_stat_show(id2);
	show_sem(id2, 0);
	show_sem(id2, 2);
	printf(" a wait-for-zero that succeeds sets otime and sempid:\n");
	OPS(id2, { 1, 0, 0 });
	sem_stat_show(id2);
	show_sem(id2, 1);
	g_id = id2;
	in_child(0, child_zero, NULL);
	show_sem(id2, 0);
	show_sem(id2, 1);
	SHOW(semctl(id2, 0, IPC_RMID));

	CASE("op_ctime_unchanged");
	id2 = SHOW(semget(IPC_PRIVATE, 1, 0600));
	sem_times(id2, &ot, &ct);
	next_second();
	OPS(id2, { 0, 1, 0 });
	{
		time_t ot2, ct2;
		sem_times(id2, &ot2, &ct2);
		printf("  ctime %s, otime %s\n", ct2 == ct ? "unchanged" : "changed",
		       ot2 > ct ? "later than ctime" : "not later");
	}
	SHOW(semctl(id2, 0, IPC_RMID));

	CASE("op_semtimedop_immediate");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 0, 0, 0 }));
	ts = (struct timespec){ 0, 0 };
	TOPS(id, &ts, { 0, -1, 0 });
	TOPS(id, &ts, { 0, -1, 0 });
	TOPS(id, &ts, { 1, 0, 0 });
	TOPS(id, NULL, { 1, 1, 0 });
	TOPS(id, &ts, { 1, 0, 0 });
	ts = (struct timespec){ 5, 0 };
	TOPS(id, &ts, { 1, -1, 0 }, { 2, 1, 0 });
	ts = (struct timespec){ 0, 0 };
	TOPS(id, &ts, { 2, 0, 0 });
	show_vals(id);

	CASE("op_timeout_einval");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 0, 0, 0 }));
	ts = (struct timespec){ 0, 1000000000 };
	TOPS(id, &ts, { 0, -1, 0 });
	ts = (struct timespec){ 0, -1 };
	TOPS(id, &ts, { 0, -1, 0 });
	ts = (struct timespec){ -1, 0 };
	TOPS(id, &ts, { 0, -1, 0 });
	ts = (struct timespec){ LONG_MIN, 999999999 };
	TOPS(id, &ts, { 0, 1, 0 });
	show_vals(id);
	printf(" checked after E2BIG and the copy of the operations, before the id and EFBIG:\n");
	ts = (struct timespec){ 0, 1000000000 };
	TOPS(id, &ts, { 9, -1, 0 });
	TOPS(12345, &ts, { 0, -1, 0 });
	SHOW(semtimedop(id, sb, 501, &ts));
	SHOW(semtimedop(id, sb, 0, &ts));
	SHOW(syscall(SYS_semtimedop, id, NULL, 1, &ts));
	show_vals(id);

	CASE("op_timeout_efault");
	/* The timeout is read first of all. */
	SHOW(syscall(SYS_semtimedop, id, (struct sembuf[]){ { 0, -1, 0 } }, 1, (void *)8));
	SHOW(syscall(SYS_semtimedop, -1, NULL, 0, (void *)8));
	SHOW(syscall(SYS_semtimedop, id, sb, 501, (void *)8));
	SHOW(syscall(SYS_semtimedop, id, NULL, 1, (void *)8));
	SHOW(syscall(SYS_semtimedop, -1, NULL, 0, NULL));
	{
		char *e = io_edge(sizeof(struct timespec) - 1);
		SHOW(syscall(SYS_semtimedop, id, (struct sembuf[]){ { 0, -1, 0 } }, 1, e));
	}
	show_vals(id);

	CASE("op_undo_range");
	/* A semadj beyond -32768..32767 is ERANGE, the value stays. */
	id2 = SHOW(semget(IPC_PRIVATE, 2, 0600));
	SHOW(semctl(id2, 0, SETVAL, 32767));
	OPS(id2, { 0, -32767, SEM_UNDO });
	OPS(id2, { 0, 5, 0 });
	OPS(id2, { 0, -1, SEM_UNDO });
	OPS(id2, { 0, -1, 0 });
	show_vals(id2);
	OPS(id2, { 1, 32767, SEM_UNDO });
	OPS(id2, { 1, -32767, 0 });
	OPS(id2, { 1, 1, SEM_UNDO });
	OPS(id2, { 1, 1, 0 }, { 1, 1, SEM_UNDO });
	show_vals(id2);
	SHOW(semctl(id2, 0, IPC_RMID));
	OPS(id, { 0, -32768, IPC_NOWAIT });
	OPS(id, { 0, 32767, 0 }, { 0, -32768, IPC_NOWAIT });
	show_vals(id);
	return 0;
}
