/* Independent decoder for Gatehouse's tests: decodes the CAT (PID 0x0001) with
 * libdvbpsi's own CAT decoder and CA_descriptor decoder, and the private sections on
 * one EMM PID with a libdvbpsi section gatherer. Prints one line per finding:
 *   cat version=V current_next=N
 *   ca system_id=0xXXXX pid=0xXXXX private_length=L
 *   emm table_id=0xXX section_length=L syntax=S
 *   done packets=N
 * usage: dvbpsi_cat FILE.ts EMM_PID
 * Built by the test at run time: cc dvbpsi_cat.c $(pkg-config --cflags --libs libdvbpsi)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <dvbpsi/dvbpsi.h>
#include <dvbpsi/psi.h>
#include <dvbpsi/descriptor.h>
#include <dvbpsi/cat.h>
#include <dvbpsi/dr_09.h>

typedef struct {
    DVBPSI_DECODER_COMMON
} emm_decoder_t;

static void message(dvbpsi_t *handle, const dvbpsi_msg_level_t level, const char *text) {
    (void)handle;
    if (level == DVBPSI_MSG_ERROR) fprintf(stderr, "libdvbpsi: %s\n", text);
}

static void on_cat(void *data, dvbpsi_cat_t *cat) {
    (void)data;
    printf("cat version=%u current_next=%d\n", cat->i_version, cat->b_current_next ? 1 : 0);
    for (dvbpsi_descriptor_t *d = cat->p_first_descriptor; d != NULL; d = d->p_next) {
        if (d->i_tag != 0x09) continue;
        dvbpsi_ca_dr_t *ca = dvbpsi_DecodeCADr(d);
        if (ca == NULL) { printf("ca undecodable\n"); continue; }
        printf("ca system_id=0x%04x pid=0x%04x private_length=%u\n", ca->i_ca_system_id, ca->i_ca_pid,
               ca->i_private_length);
    }
    dvbpsi_cat_delete(cat);
}

static void on_emm(dvbpsi_t *handle, dvbpsi_psi_section_t *section) {
    (void)handle;
    for (dvbpsi_psi_section_t *s = section; s != NULL; s = s->p_next)
        printf("emm table_id=0x%02x section_length=%u syntax=%d\n", s->i_table_id, s->i_length,
               s->b_syntax_indicator ? 1 : 0);
    dvbpsi_DeletePSISections(section);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: dvbpsi_cat FILE.ts EMM_PID\n"); return 64; }
    unsigned emm_pid = (unsigned)strtoul(argv[2], NULL, 0);
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) { perror(argv[1]); return 66; }
    dvbpsi_t *cat = dvbpsi_new(&message, DVBPSI_MSG_ERROR);
    dvbpsi_t *emm = dvbpsi_new(&message, DVBPSI_MSG_ERROR);
    if (cat == NULL || emm == NULL || !dvbpsi_cat_attach(cat, on_cat, NULL)) { fprintf(stderr, "setup failed\n"); return 70; }
    emm->p_decoder = dvbpsi_decoder_new(on_emm, 4096, true, sizeof(emm_decoder_t));
    if (emm->p_decoder == NULL) { fprintf(stderr, "decoder failed\n"); return 70; }
    uint8_t packet[188];
    unsigned long count = 0;
    while (fread(packet, 1, 188, f) == 188) {
        count++;
        if (packet[0] != 0x47) { printf("sync error at %lu\n", count - 1); continue; }
        unsigned pid = ((unsigned)(packet[1] & 0x1f) << 8) | packet[2];
        if (pid == 0x0001) dvbpsi_packet_push(cat, packet);
        else if (pid == emm_pid) dvbpsi_packet_push(emm, packet);
    }
    fclose(f);
    printf("done packets=%lu\n", count);
    dvbpsi_cat_detach(cat);
    dvbpsi_delete(cat);
    dvbpsi_decoder_delete(emm->p_decoder);
    emm->p_decoder = NULL;
    dvbpsi_delete(emm);
    return 0;
}
