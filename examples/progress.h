/*
 * progress.h - a one-line progress indicator on stderr for the lgd tool.
 *
 * Not part of liblgd's API. Active only when stderr is a terminal and the caller
 * did not ask for quiet; then it redraws one line ("label  42%  detail") at most
 * ten times a second and erases it when done, so that the tool's stdout and any
 * redirected stderr stay clean.
 */
#ifndef LGD_PROGRESS_H
#define LGD_PROGRESS_H

typedef struct progress {
    int enabled;        /* 1 when drawing */
    double last_ms;     /* time of the last redraw (tool_now_ms) */
    int drawn;          /* a line is on the screen */
    double total;       /* work units of the whole task */
    double done;        /* units of the finished parts */
    char label[64];
} progress;

/* Starts a task of `total` units (> 0) named label; enabled when stderr is a
 * terminal and quiet is 0. */
void progress_start(progress *p, const char *label, double total, int quiet);
/* Reports that `units` more units are finished (a finished part of the task). */
void progress_advance(progress *p, double units);
/* Redraws with done + partial units finished and an optional detail text (NULL for
 * none), unless the last redraw was under 100 ms ago. */
void progress_show(progress *p, double partial, const char *detail);
/* Erases the line. */
void progress_end(progress *p);

#endif /* LGD_PROGRESS_H */
