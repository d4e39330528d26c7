/*
 * test_trajectory_tool.c - the `lgd trajectory` subcommand (issue 4, the paper's Sec. 6.3):
 * run small (3 + 4 samples per task, 20 steps, a 2-point grid) into a temporary
 * directory; its CSV files are well formed (header, field counts, finite numbers, row
 * counts), the selected scales come from the grid, guidance beats the Baseline on path
 * following, its SVG files are SVG, and its exit statuses are 0 / 1 / 2 as documented.
 *
 * The tool runs as a child process ($LGD_TOOL, set by meson), which the valgrind pass does
 * not trace. The child gets OMP_NUM_THREADS=1 unless the environment sets it: on a
 * 2-core machine where another test keeps a core busy, OpenBLAS's OpenMP threads (which
 * the context's thread count does not reach) can make the prior's set-up very slow.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tooltest.h"



/* A parsed CSV file: the header's column count and every field of every row. */
typedef struct csv {
    char *text;
    int ncols;
    long nrows;
    char ***rows; /* rows[r][c] point into text */
} csv;

static void csv_free(csv *c)
{
    for (long r = 0; r < c->nrows; r++)
        free(c->rows[r]);
    free(c->rows);
    free(c->text);
}

/*
 * Reads and checks a CSV file: the header line is `header`; every row has as many
 * fields, none empty; the fields from column `first_numeric` on are finite numbers;
 * there are `rows` rows.
 */
static void check_csv(const char *dir, const char *name, const char *header, int first_numeric,
                      long rows, csv *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    csv c = { tt_slurp(path, NULL), 1, 0, NULL };
    for (const char *p = header; *p; p++)
        c.ncols += *p == ',';
    char *save = NULL;
    char *line = strtok_r(c.text, "\n", &save);
    ck_assert_msg(line != NULL, "%s is empty", name);
    ck_assert_msg(strcmp(line, header) == 0, "%s: header '%s', expected '%s'", name, line, header);
    long cap = 0;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        int commas = 0;
        for (const char *p = line; *p; p++)
            commas += *p == ',';
        ck_assert_msg(commas + 1 == c.ncols, "%s row %ld: %d fields, expected %d", name,
                      c.nrows + 1, commas + 1, c.ncols);
        if (c.nrows == cap) {
            cap = cap ? 2 * cap : 256;
            c.rows = realloc(c.rows, (size_t)cap * sizeof *c.rows);
            ck_assert_ptr_nonnull(c.rows);
        }
        char **fields = malloc((size_t)c.ncols * sizeof *fields);
        ck_assert_ptr_nonnull(fields);
        char *p = line;
        for (int col = 0; col < c.ncols; col++) {
            fields[col] = p;
            char *comma = strchr(p, ',');
            if (comma) {
                *comma = '\0';
                p = comma + 1;
            }
            ck_assert_msg(*fields[col] != '\0', "%s row %ld: empty field %d", name, c.nrows + 1,
                          col);
            if (col >= first_numeric) {
                char *end = NULL;
                double v = strtod(fields[col], &end);
                ck_assert_msg(end != fields[col] && *end == '\0' && isfinite(v),
                              "%s row %ld column %d: '%s' is not a finite number", name,
                              c.nrows + 1, col, fields[col]);
            }
        }
        c.rows[c.nrows++] = fields;
    }
    ck_assert_msg(c.nrows == rows, "%s: %ld rows, expected %ld", name, c.nrows, rows);
    if (out)
        *out = c;
    else
        csv_free(&c);
}

/* The numeric field `col` of the first row whose first `nkeys` fields equal keys[]. */
static double csv_lookup(const csv *c, const char *const *keys, int nkeys, int col)
{
    for (long r = 0; r < c->nrows; r++) {
        int ok = 1;
        for (int k = 0; k < nkeys && ok; k++)
            ok = strcmp(c->rows[r][k], keys[k]) == 0;
        if (ok)
            return strtod(c->rows[r][col], NULL);
    }
    ck_abort_msg("no row %s,%s,...", keys[0], nkeys > 1 ? keys[1] : "");
    return NAN;
}


#define METRICS                                                                               \
    "samples,objective,objective_sd,objective_median,collision,final_distance,"              \
    "final_distance_sd,success,nll_median,speed_median,speed_max,failed,implausible,seconds"

START_TEST(trajectory_output_is_well_formed)
{
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-trajectory-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char out[4096], log[4096];
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(log, sizeof log, "%s/log.txt", tmp);

    /* 3 paper-protocol samples and 4 large-estimate samples per task, 2 tuning samples,
     * 20 steps, a grid of two scales */
    char *args[] = { (char *)tool, "trajectory", "--seeds", "3", "--large=4", "--tune", "2",
                     "--steps", "20", "--scales", "0.03,0.1", "--quiet", "--out", out, NULL };
    int rc = tt_run_tool(log, args);
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(rc == 0, "lgd trajectory exited %d:\n%s", rc, text);
    ck_assert_msg(strstr(text, "Table 2 analogue") && strstr(text, "Table 3 analogue"),
                  "no tables:\n%s", text);
    ck_assert_msg(strstr(text, "Tuning (seed 1, 2 samples per task)"), "no tuning table:\n%s",
                  text);
    ck_assert_msg(strstr(text, "large estimate: 4 samples"), "no large-estimate table:\n%s",
                  text);
    free(text);

    const long tasks = 5, families = 2, methods = 4, guided = 3, scales = 2, rows = 4;
    csv grid, res;
    check_csv(out, "grid.csv", "method,family,task,scale,selected," METRICS, 3,
              (1 + guided * scales) * (tasks + families), &grid);
    check_csv(out, "results.csv", "protocol,method,family,task,scale," METRICS, 4,
              2 * methods * (tasks + families), &res);
    check_csv(out, "trajectories.csv", "method,task,sample,frame,x,y", 2,
              methods * tasks * rows * 64, NULL);
    /* one selected scale per guided method and family, taken from the grid */
    const char *fams[2] = { "path", "obstacle" };
    const char *guided_keys[3] = { "dps", "mc_n10", "mc_n100" };
    for (int m = 0; m < 3; m++)
        for (int f = 0; f < 2; f++) {
            int selected = 0;
            for (long r = 0; r < grid.nrows; r++)
                if (!strcmp(grid.rows[r][0], guided_keys[m]) && !strcmp(grid.rows[r][1], fams[f]) &&
                    !strcmp(grid.rows[r][2], "all") && !strcmp(grid.rows[r][4], "1"))
                    selected++;
            ck_assert_msg(selected == 1, "%s/%s: %d selected scales", guided_keys[m], fams[f],
                          selected);
            const char *key[4] = { "paper", guided_keys[m], fams[f], "all" };
            double s = csv_lookup(&res, key, 4, 4);
            ck_assert_msg(fabs(s - 0.03) < 1e-9 || fabs(s - 0.1) < 1e-9,
                          "%s/%s: scale %g is not on the grid", guided_keys[m], fams[f], s);
        }
    /* guidance follows the paths far better than no guidance (objective is column 6) */
    const char *kb[4] = { "large", "baseline", "path", "all" };
    const char *kd[4] = { "large", "dps", "path", "all" };
    const char *km[4] = { "large", "mc_n100", "path", "all" };
    double ob = csv_lookup(&res, kb, 4, 6), od = csv_lookup(&res, kd, 4, 6),
           om = csv_lookup(&res, km, 4, 6);
    ck_assert_msg(od < 0.5 * ob && om < 0.5 * ob,
                  "path following: Baseline %g, DPS %g, LGD-MC n=100 %g", ob, od, om);
    csv_free(&grid);
    csv_free(&res);
    tt_check_svg(out, "fig_path.svg");
    tt_check_svg(out, "fig_obstacle.svg");
    tt_remove_dir(out);
    unlink(log);
    rmdir(tmp);
}
END_TEST

START_TEST(trajectory_exit_statuses)
{
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-trajectory-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char log[4096], file[4096], under_file[4096];
    snprintf(log, sizeof log, "%s/log.txt", tmp);
    snprintf(file, sizeof file, "%s/file", tmp);
    snprintf(under_file, sizeof under_file, "%s/file/out", tmp);
    FILE *fp = fopen(file, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);

    char *help[] = { (char *)tool, "help", "trajectory", NULL };
    ck_assert_int_eq(tt_run_tool(log, help), 0);
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(strstr(text, "lgd trajectory") != NULL, "no usage:\n%s", text);
    free(text);
    char *own_help[] = { (char *)tool, "trajectory", "--help", NULL };
    ck_assert_int_eq(tt_run_tool(log, own_help), 0);
    char *list[] = { (char *)tool, "help", NULL };
    ck_assert_int_eq(tt_run_tool(log, list), 0);
    text = tt_slurp(log, NULL);
    ck_assert_msg(strstr(text, "trajectory") != NULL, "not in the command list:\n%s", text);
    free(text);

    char *const bad[][6] = {
        { (char *)tool, "trajectory", "--bogus", NULL },
        { (char *)tool, "trajectory", "--seeds", "0", NULL },
        { (char *)tool, "trajectory", "--large", "-1", NULL },
        { (char *)tool, "trajectory", "--tune", "x", NULL },
        { (char *)tool, "trajectory", "--steps", NULL },
        { (char *)tool, "trajectory", "--scales", "0.1,,1", NULL },
        { (char *)tool, "trajectory", "--scales", "-1", NULL },
        { (char *)tool, "trajectory", "--scales", "nan", NULL },
        { (char *)tool, "trajectory", "--rule", "bogus", NULL },
        { (char *)tool, "trajectory", "--select", "bogus", NULL },
        { (char *)tool, "trajectory", "--threads", "-2", NULL },
        { (char *)tool, "trajectory", "--out=", NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tt_run_tool(log, bad[i]);
        ck_assert_msg(rc == 2, "%s %s %s: exit %d, expected 2", bad[i][1], bad[i][2],
                      bad[i][3] ? bad[i][3] : "", rc);
    }
    /* An output directory that cannot be created: an error, not bad usage. */
    char *bad_out[] = { (char *)tool, "trajectory", "--quiet", "--out", under_file, NULL };
    ck_assert_int_eq(tt_run_tool(log, bad_out), 1);
    text = tt_slurp(log, NULL);
    ck_assert_msg(strstr(text, "cannot create") != NULL, "no message:\n%s", text);
    free(text);
    unlink(file);
    unlink(log);
    rmdir(tmp);
}
END_TEST

static Suite *trajectory_tool_suite(void)
{
    Suite *s = suite_create("trajectory_tool");
    TCase *tc = tcase_create("tool");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, trajectory_output_is_well_formed);
    tcase_add_test(tc, trajectory_exit_statuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(trajectory_tool_suite());
}
