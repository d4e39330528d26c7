/*
 * tool_progress.c - the shared module's progress indicator (tool.h): one line on a
 * terminal's stderr, and the sampler step callback that feeds it.
 */
#include "tool.h"

#include <unistd.h>

#include "tool_util.h"

/* Redraws at most this often. */
#define PROGRESS_INTERVAL_MS 100.0

void progress_start(progress *p, const char *label, double total, int quiet)
{
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->last_ms = -1e300;
    p->drawn = 0;
    p->total = total > 0.0 ? total : 1.0;
    p->done = 0.0;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
}

void progress_idle(progress *p)
{
    progress_start(p, "", 1.0, 1);
}

void progress_advance(progress *p, double units)
{
    p->done += units;
}

void progress_show(progress *p, double partial, const char *detail)
{
    if (!p->enabled)
        return;
    double now = tool_now_ms();
    if (now - p->last_ms < PROGRESS_INTERVAL_MS)
        return;
    p->last_ms = now;
    double frac = (p->done + partial) / p->total;
    if (frac < 0.0)
        frac = 0.0;
    if (frac > 1.0)
        frac = 1.0;
    /* \r, the text, then erase to the end of the line (ANSI EL). */
    fprintf(stderr, "\r%s %3d%%  %s\033[K", p->label, (int)(100.0 * frac + 0.5),
            detail ? detail : "");
    fflush(stderr);
    p->drawn = 1;
}

void progress_end(progress *p)
{
    if (p->enabled && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = 0;
}

int progress_on_step(void *user, int32_t step, int32_t num_steps, float sigma,
                     const lgd_guidance_report *report)
{
    (void)sigma;
    (void)report;
    progress_run *run = user;
    progress_show(run->p, run->units * (double)step / (double)num_steps, run->detail);
    return 0;
}
