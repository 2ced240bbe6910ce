/* Attachments changed with munmap: nattch follows the mappings and shmdt
 * finds the pieces. */
#include "common.h"

int main(void)
{
	setup();
	int id;
	char *p;

	id = shmget(0x10060001, 4 * 4096, IPC_CREAT | 0600);
	if (id < 0)
		die("shmget");

	CASE("mmap_munmap_detaches");
	p = AT(shmat(id, NULL, 0), NULL);
	show_nattch(id);
	SHOW(munmap(p, 4 * 4096));
	show_nattch(id);
	SHOW(shmdt(p));

	CASE("mmap_partial_munmap_then_shmdt");
	p = AT(shmat(id, NULL, 0), NULL);
	SHOW(munmap(p, 4096));
	show_nattch(id);
	printf("  perms of rest=%s\n", map_perms(p + 4096));
	SHOW(shmdt(p + 4096));
	SHOW(shmdt(p));
	show_nattch(id);
	printf("  perms of rest=%s\n", map_perms(p + 4096));

	/* No mprotect-split case: the kernel counts a split attachment once per VMA,
	 * ipcshim once per attachment (a documented limitation). */

	CASE("mmap_middle_hole_then_shmdt");
	p = AT(shmat(id, NULL, 0), NULL);
	SHOW(munmap(p + 4096, 4096));
	/* nattch is not shown here: the kernel counts the two pieces (2), ipcshim the
	 * attachment (1) — a documented limitation. shmdt must still remove both. */
	SHOW(shmdt(p));
	show_nattch(id);
	printf("  first page perms=%s\n", map_perms(p));
	printf("  last page perms=%s\n", map_perms(p + 3 * 4096));
	SHOW(shmctl(id, IPC_RMID, NULL));
	return 0;
}
