/* semget: creation, lookup, IPC_CREAT/IPC_EXCL, nsems checks against the
 * existing set and SEMMSL, permissions as nobody, keys and ids.
 * The configurable limits are in sem_limits.c. */
#include "common.h"

#define K1 0x5e6e0001
#define K2 0x5e6e0002
#define K3 0x5e6e0003
#define K4 0x5e6e0004
#define K5 0x5e6e0005
#define K6 0x5e6e0006

static void nobody_get(void *arg)
{
	(void)arg;
	printf(" as nobody, K4 (0600, 3 sems):\n");
	SHOW(semget(K4, 0, 0));
	SHOW(semget(K4, 3, 0));
	SHOW(semget(K4, 1, 0600));
	SHOW(semget(K4, 1, 0400));
	SHOW(semget(K4, 1, 0004));
	SHOW(semget(K4, 1, IPC_CREAT | 0600));
	SHOW(semget(K4, 5, 0600));
	SHOW(semget(K4, 1, IPC_CREAT | IPC_EXCL | 0600));
	printf(" as nobody, K5 (0604):\n");
	SHOW(semget(K5, 1, 0004));
	SHOW(semget(K5, 1, 0400));
	SHOW(semget(K5, 1, 0444));
	SHOW(semget(K5, 1, 0200));
	SHOW(semget(K5, 1, 0666));
	SHOW(semget(K5, 1, 0002));
}

static void nobody_create(void *arg)
{
	(void)arg;
	int id = SHOW(semget(K6, 2, IPC_CREAT | 0640));
	sem_stat_show(id);
	SHOW(semctl(id, 1, SETVAL, 9));
	SHOW(semctl(id, 1, GETVAL));
}

int main(void)
{
	setup();
	alarm(20);
	int id, id2, id3;

	CASE("get_create");
	id = SHOW(semget(K1, 3, IPC_CREAT | 0640));
	sem_stat_show(id);
	show_vals(id);
	show_sem(id, 0);
	show_sem(id, 2);

	CASE("get_lookup");
	SHOW(semget(K1, 3, 0) == id);
	SHOW(semget(K1, 0, 0) == id);
	SHOW(semget(K1, 1, 0) == id);
	SHOW(semget(K1, 3, 0640) == id);
	SHOW(semget(K1, 0, IPC_CREAT) == id);
	SHOW(semget(K1, 4, 0));
	SHOW(semget(K1, 4, IPC_CREAT | 0640));
	SHOW(semget(K1, 32000, 0));

	CASE("get_excl");
	SHOW(semget(K1, 3, IPC_CREAT | IPC_EXCL | 0640));
	SHOW(semget(K1, 100, IPC_CREAT | IPC_EXCL | 0640));
	SHOW(semget(K1, 0, IPC_CREAT | IPC_EXCL));
	SHOW(semget(K1, 3, IPC_EXCL) == id);
	SHOW(semget(K1, 3, IPC_CREAT) == id);

	CASE("get_enoent_and_nsems");
	SHOW(semget(K2, 1, 0));
	SHOW(semget(K2, 0, 0));
	SHOW(semget(K2, 1, IPC_EXCL | 0600));
	SHOW(semget(K2, 0, IPC_CREAT | 0600));
	SHOW(semget(K2, -1, IPC_CREAT | 0600));
	SHOW(semget(K2, -1, 0));
	SHOW(semget(K1, -1, 0));
	SHOW(semget(K2, 32001, IPC_CREAT | 0600));
	SHOW(semget(K1, 32001, 0));
	SHOW(semget(K1, INT_MAX, 0));
	SHOW(semget(IPC_PRIVATE, 0, 0600));
	SHOW(semget(IPC_PRIVATE, 32001, 0600));
	id2 = SHOW(semget(K2, 32000, IPC_CREAT | 0600));
	show_sem(id2, 31999);
	SHOW(semget(K2, 0, 0) == id2);
	SHOW(semctl(id2, 0, IPC_RMID));

	CASE("get_private");
	id2 = SHOW(semget(IPC_PRIVATE, 2, 0600));
	id3 = SHOW(semget(IPC_PRIVATE, 2, IPC_CREAT | IPC_EXCL | 0600));
	SHOW(id2 != id3);
	sem_stat_show(id3);
	SHOW(semget(IPC_PRIVATE, 2, 0600) != id2);
	SHOW(semctl(id2, 0, IPC_RMID));
	SHOW(semctl(id3, 0, IPC_RMID));

	CASE("get_mode_bits");
	id2 = SHOW(semget(K3, 1, IPC_CREAT | 07777));
	sem_stat_show(id2);
	SHOW(semctl(id2, 0, IPC_RMID));
	id2 = SHOW(semget(K3, 1, IPC_CREAT | IPC_NOWAIT | 0));
	sem_stat_show(id2);
	printf(" root needs no permission bits:\n");
	SHOW(semctl(id2, 0, SETVAL, 4));
	SHOW(semctl(id2, 0, GETVAL));
	SHOW(semget(K3, 1, 0666) == id2);
	SHOW(semctl(id2, 0, IPC_RMID));

	CASE("get_perm_nobody");
	SHOW(semget(K4, 3, IPC_CREAT | 0600) >= 0);
	SHOW(semget(K5, 1, IPC_CREAT | 0604) >= 0);
	in_child(NOBODY, nobody_get, NULL);

	CASE("get_nobody_creates");
	in_child(NOBODY, nobody_create, NULL);
	id2 = SHOW(semget(K6, 0, 0));
	sem_stat_show(id2);
	SHOW(semctl(id2, 1, GETVAL));
	show_sem(id2, 1);

	CASE("get_after_rmid");
	SHOW(semctl(id, 0, IPC_RMID));
	SHOW(semget(K1, 0, 0));
	SHOW(semget(K1, 3, 0));
	id2 = SHOW(semget(K1, 5, IPC_CREAT | 0600));
	SHOW(id2 != id);
	sem_stat_show(id2);
	SHOW(semctl(id, 0, GETVAL));
	SHOW(semget(K1, 5, 0) == id2);

	CASE("get_key_values");
	id = SHOW(semget((key_t)0x80000001, 1, IPC_CREAT | 0600));
	sem_stat_show(id);
	SHOW(semget((key_t)0x80000001, 0, 0) == id);
	id = SHOW(semget((key_t)-1, 1, IPC_CREAT | 0600));
	sem_stat_show(id);
	SHOW(semget((key_t)0xffffffff, 1, 0) == id);
	return 0;
}
