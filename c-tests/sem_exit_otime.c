/* What a process's exit does to sem_otime and sempid: a SEM_UNDO semop
 * creates the process's undo record for the set even when it fails (EAGAIN,
 * EFBIG, EACCES), and exit_sem() then updates sem_otime for every record it
 * processes, also with all adjustments 0; sempid only changes for the
 * semaphores with an adjustment. */
#include "common.h"

static int g_id;

static void nobody_undo(void *arg)
{
	(void)arg;
	OPS(g_id, { 0, 1, SEM_UNDO });
	OPS(g_id, { 0, 1, 0 });
}

static void run_child(struct sembuf s)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		sem_ops_show(g_id, &s, 1, NULL, 0);
		exit(0);
	}
	show_status("child", wait_child(pid));
}

static void show_otime(void)
{
	time_t ot, ct;
	sem_times(g_id, &ot, &ct);
	printf("  otime %s\n", trel(ot));
}

int main(void)
{
	setup();
	alarm(20);
	int p_up[2], p_down[2];
	time_t ot, ct, ot2;
	pid_t pid;
	io_pipe(p_up);
	io_pipe(p_down);

	CASE("exit_no_undo_record");
	g_id = SHOW(semget(IPC_PRIVATE, 2, 0600));
	run_child((struct sembuf){ 0, -1, IPC_NOWAIT });
	run_child((struct sembuf){ 5, 1, 0 });
	show_otime();

	CASE("exit_failed_undo_eagain");
	run_child((struct sembuf){ 0, -1, IPC_NOWAIT | SEM_UNDO });
	show_otime();
	show_sem(g_id, 0);
	SHOW(semctl(g_id, 0, IPC_RMID));

	CASE("exit_failed_undo_efbig");
	g_id = SHOW(semget(IPC_PRIVATE, 2, 0600));
	run_child((struct sembuf){ 5, 1, SEM_UNDO });
	show_otime();
	SHOW(semctl(g_id, 0, IPC_RMID));

	CASE("exit_failed_undo_eacces");
	g_id = SHOW(semget(IPC_PRIVATE, 2, 0604));
	in_child(NOBODY, nobody_undo, NULL);
	show_otime();
	show_sem(g_id, 0);
	SHOW(semctl(g_id, 0, IPC_RMID));

	CASE("exit_zero_adjustment");
	g_id = SHOW(semget(IPC_PRIVATE, 2, 0600));
	pid = io_fork();
	if (pid == 0) {
		sem_do(g_id, 0, 1, SEM_UNDO);
		sem_do(g_id, 0, -1, SEM_UNDO);
		sem_do(g_id, 1, 2, SEM_UNDO);
		io_post(p_up[1]);
		io_wait(p_down[0]);
		exit(0);
	}
	io_wait(p_up[0]);
	OPS(g_id, { 0, 1, 0 });
	SHOW(semctl(g_id, 1, SETVAL, 5));
	show_sem(g_id, 0);
	show_sem(g_id, 1);
	sem_times(g_id, &ot, &ct);
	next_second();
	io_post(p_down[1]);
	show_status("child", wait_child(pid));
	sem_times(g_id, &ot2, &ct);
	printf("  otime %s\n", ot2 > ot ? "later" : "not later");
	show_sem(g_id, 0);
	show_sem(g_id, 1);
	return 0;
}
