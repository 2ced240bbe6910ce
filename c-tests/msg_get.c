/* msgget: private and keyed queues, IPC_CREAT/IPC_EXCL, permissions on
 * lookup, the mode bits kept, ids after removal, and a new queue's fields. */
#include "common.h"

static int g_key_id;

static void as_nobody(void *arg)
{
	(void)arg;
	SHOW(msgget(0x4d530001, 0));
	SHOW(msgget(0x4d530001, 0400));
	SHOW(msgget(0x4d530001, 0600));
	SHOW(msgget(0x4d530002, 0));
	SHOW(msgget(0x4d530002, 0444));
	SHOW(msgget(0x4d530002, 0222));
	SHOW(msgget(0x4d530003, IPC_CREAT | 0600) >= 0);
}

int main(void)
{
	msg_setup();
	int a, b, id;

	CASE("get_private");
	a = SHOW(msgget(IPC_PRIVATE, 0600));
	b = SHOW(msgget(IPC_PRIVATE, IPC_CREAT | IPC_EXCL | 0640));
	msq_stat_show(a);
	msq_stat_show(b);

	CASE("get_key");
	SHOW(msgget(0x4d530001, 0600));
	g_key_id = SHOW(msgget(0x4d530001, IPC_CREAT | 0600));
	SHOW(msgget(0x4d530001, 0600) == g_key_id);
	SHOW(msgget(0x4d530001, IPC_CREAT | 0777) == g_key_id);
	SHOW(msgget(0x4d530001, IPC_CREAT | IPC_EXCL | 0600));
	SHOW(msgget(0x4d530001, IPC_EXCL | 0600) == g_key_id);
	msq_stat_show(g_key_id);

	CASE("get_mode_bits");
	id = SHOW(msgget(0x4d530002, IPC_CREAT | 0177644));
	msq_stat_show(id);

	CASE("get_perms_nobody");
	in_child(NOBODY, as_nobody, NULL);
	id = SHOW(msgget(0x4d530003, 0));
	msq_stat_show(id);

	CASE("get_rmid_then_key");
	SHOW(msgctl(g_key_id, IPC_RMID, NULL));
	SHOW(msgget(0x4d530001, 0600));
	id = SHOW(msgget(0x4d530001, IPC_CREAT | 0600));
	SHOW(id == g_key_id);
	SHOW(msgsnd(g_key_id, &(struct { long t; char c; }){ 1, 'x' }, 1, IPC_NOWAIT));

	CASE("get_ids_cycle");
	for (int i = 0; i < 4; i++) {
		int x = msgget(IPC_PRIVATE, 0600);
		printf("  id %d\n", x);
		if (i % 2 == 0)
			SHOW(msgctl(x, IPC_RMID, NULL));
	}
	return 0;
}
