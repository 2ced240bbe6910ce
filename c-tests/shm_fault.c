/* Memory protection of attachments: faults a user-space implementation
 * must reproduce exactly. */
#include "common.h"

static void *g_code;

static void call_code(void *arg)
{
	(void)arg;
	int (*fn)(void) = (int (*)(void))g_code;
	printf("  call returned %d\n", fn());
}

int main(void)
{
	setup();
	int id;
	char *p, *h;

	id = shmget(0x10050001, 8192, IPC_CREAT | 0600);
	if (id < 0)
		die("shmget");

	CASE("fault_rdonly_write");
	p = AT(shmat(id, NULL, SHM_RDONLY), NULL);
	probe("read", p, 0);
	probe("write", p, 1);
	show_nattch(id);
	SHOW(shmdt(p));

	CASE("fault_rdonly_mprotect");
	p = AT(shmat(id, NULL, SHM_RDONLY), NULL);
	SHOW(mprotect(p, 4096, PROT_READ | PROT_WRITE));
	SHOW(mprotect(p, 4096, PROT_NONE));
	probe("read after PROT_NONE", p, 0);
	SHOW(mprotect(p, 4096, PROT_READ));
	probe("read after PROT_READ", p, 0);
	SHOW(shmdt(p));

	CASE("fault_after_shmdt");
	p = AT(shmat(id, NULL, 0), NULL);
	p[0] = 1;
	SHOW(shmdt(p));
	probe("read after shmdt", p, 0);

	CASE("fault_past_end");
	h = hole();
	p = AT(shmat(id, h, 0), h);
	probe("write last byte", p + 8191, 1);
	probe("read past end", p + 8192, 0);
	SHOW(shmdt(p));

	CASE("fault_exec");
	/* x86-64: mov eax, 42; ret */
	static const unsigned char code[] = { 0xb8, 42, 0, 0, 0, 0xc3 };
	p = AT(shmat(id, NULL, 0), NULL);
	memcpy(p, code, sizeof code);
	g_code = AT(shmat(id, NULL, SHM_EXEC | SHM_RDONLY), NULL);
	in_child(0, call_code, NULL);
	SHOW(shmdt(g_code));
	g_code = p;
	in_child(0, call_code, NULL);
	SHOW(shmdt(p));

	CASE("fault_rdonly_after_rmid");
	p = AT(shmat(id, NULL, SHM_RDONLY), NULL);
	SHOW(shmctl(id, IPC_RMID, NULL));
	probe("read after IPC_RMID", p, 0);
	probe("write after IPC_RMID", p, 1);
	show_nattch(id);
	SHOW(shmdt(p));
	show_nattch(id);
	return 0;
}
