//! The paper's trajectory experiment: where a root trajectory lives in a sample, the
//! obstacle loss's constants and the trajectory prior's options. The losses are
//! [`crate::Loss::path`] and [`crate::Loss::obstacle_avoidance`], the prior
//! [`crate::Model::trajectory_prior`].
use lgd_sys as sys;

/// Where frame t's root (x, y) lives in a sample: `x[root_offset + t * frame_stride +
/// {0, 1}]`, as velocities integrated from the origin (scaled by velocity_scale) or as
/// positions. `Default` is the library's (frames 0: set it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrajectoryLayout {
    pub frames: i64,
    pub frame_stride: i64,
    pub root_offset: i64,
    pub velocities: bool,
    pub velocity_scale: f32,
}

impl Default for TrajectoryLayout {
    fn default() -> Self {
        let mut o: sys::lgd_trajectory_layout = unsafe { std::mem::zeroed() };
        let st = unsafe {
            sys::lgd_trajectory_layout_init(&mut o, sys::struct_size_of::<sys::lgd_trajectory_layout>())
        };
        assert_eq!(st, sys::LGD_OK);
        TrajectoryLayout {
            frames: o.frames,
            frame_stride: o.frame_stride,
            root_offset: o.root_offset,
            velocities: o.velocities != 0,
            velocity_scale: o.velocity_scale,
        }
    }
}

impl TrajectoryLayout {
    /// The default layout with `frames` frames: [frames][2] velocities.
    pub fn new(frames: i64) -> Self {
        TrajectoryLayout { frames, ..TrajectoryLayout::default() }
    }

    pub(crate) fn to_raw(self) -> sys::lgd_trajectory_layout {
        let mut o: sys::lgd_trajectory_layout = unsafe { std::mem::zeroed() };
        unsafe {
            sys::lgd_trajectory_layout_init(&mut o, sys::struct_size_of::<sys::lgd_trajectory_layout>())
        };
        o.frames = self.frames;
        o.frame_stride = self.frame_stride;
        o.root_offset = self.root_offset;
        o.velocities = self.velocities as i32;
        o.velocity_scale = self.velocity_scale;
        o
    }
}

/// The obstacle loss's constants; `Default` is the paper's Eq. 20 (the library's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObstacleOptions {
    pub sharpness: f32,
    pub obstacle_weight: f32,
    pub goal_weight: f32,
}

impl Default for ObstacleOptions {
    fn default() -> Self {
        let mut o: sys::lgd_obstacle_options = unsafe { std::mem::zeroed() };
        let st = unsafe {
            sys::lgd_obstacle_options_init(&mut o, sys::struct_size_of::<sys::lgd_obstacle_options>())
        };
        assert_eq!(st, sys::LGD_OK);
        ObstacleOptions {
            sharpness: o.sharpness,
            obstacle_weight: o.obstacle_weight,
            goal_weight: o.goal_weight,
        }
    }
}

impl ObstacleOptions {
    pub(crate) fn to_raw(self) -> sys::lgd_obstacle_options {
        let mut o: sys::lgd_obstacle_options = unsafe { std::mem::zeroed() };
        unsafe { sys::lgd_obstacle_options_init(&mut o, sys::struct_size_of::<sys::lgd_obstacle_options>()) };
        o.sharpness = self.sharpness;
        o.obstacle_weight = self.obstacle_weight;
        o.goal_weight = self.goal_weight;
        o
    }
}

/// Options of the trajectory prior; `Default` is the library's (64 frames, 8 headings, 3
/// turns, ...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrajectoryPriorOptions {
    pub frames: i32,
    pub headings: i32,
    pub turns: i32,
    pub max_turn: f32,
    pub speed: f32,
    pub gp_std: f32,
    pub gp_length: f32,
    pub jitter: f32,
}

impl Default for TrajectoryPriorOptions {
    fn default() -> Self {
        let mut o: sys::lgd_trajectory_prior_options = unsafe { std::mem::zeroed() };
        let st = unsafe {
            sys::lgd_trajectory_prior_options_init(
                &mut o,
                sys::struct_size_of::<sys::lgd_trajectory_prior_options>(),
            )
        };
        assert_eq!(st, sys::LGD_OK);
        TrajectoryPriorOptions {
            frames: o.frames,
            headings: o.headings,
            turns: o.turns,
            max_turn: o.max_turn,
            speed: o.speed,
            gp_std: o.gp_std,
            gp_length: o.gp_length,
            jitter: o.jitter,
        }
    }
}

impl TrajectoryPriorOptions {
    pub(crate) fn to_raw(self) -> sys::lgd_trajectory_prior_options {
        let mut o: sys::lgd_trajectory_prior_options = unsafe { std::mem::zeroed() };
        unsafe {
            sys::lgd_trajectory_prior_options_init(
                &mut o,
                sys::struct_size_of::<sys::lgd_trajectory_prior_options>(),
            )
        };
        o.frames = self.frames;
        o.headings = self.headings;
        o.turns = self.turns;
        o.max_turn = self.max_turn;
        o.speed = self.speed;
        o.gp_std = self.gp_std;
        o.gp_length = self.gp_length;
        o.jitter = self.jitter;
        o
    }
}
