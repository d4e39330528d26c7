/*
 * progress.c - the progress indicator of progress.h.
 */
#include "progress.h"

#include <stdio.h>
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
