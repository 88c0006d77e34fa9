//! Unit tests of `mutable`.

use super::*;

#[test]
fn modes_round_trip_and_booleans_map_like_systemd() {
    for m in MutableMode::ALL {
        assert_eq!(m.as_str().parse::<MutableMode>(), Ok(m));
    }
    assert_eq!("true".parse::<MutableMode>(), Ok(MutableMode::Yes));
    assert_eq!("off".parse::<MutableMode>(), Ok(MutableMode::No));
    assert_eq!("1".parse::<MutableMode>(), Ok(MutableMode::Yes));
    assert!("maybe".parse::<MutableMode>().is_err());
    assert!("Auto".parse::<MutableMode>().is_err());
}

// ---- plan(): pure, facts built by hand ----

pub(crate) fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

pub(crate) fn ext(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Existing, non-empty, writable hierarchy without a mutable dir.
fn host(h: &str) -> HierarchyFacts {
    HierarchyFacts {
        hierarchy: p(h),
        resolved: p(h),
        exists: true,
        is_empty: false,
        mode: 0o755,
        read_only_fs: false,
        mutable_dir: None,
    }
}

/// A separate, writable mutable dir with the hierarchy's mode.
fn separate_mutable(h: &str) -> MutableDirFacts {
    MutableDirFacts {
        resolved: mutable_dir_for(Path::new(h)),
        mode: 0o755,
        same_inode_as_hierarchy: false,
        on_read_only_fs: false,
        parent_same_fs: true,
    }
}

/// Flatcar: /var/lib/extensions.mutable/etc -> /etc.
fn self_linked(h: &str) -> MutableDirFacts {
    MutableDirFacts {
        resolved: p(h),
        mode: 0o755,
        same_inode_as_hierarchy: true,
        on_read_only_fs: false,
        parent_same_fs: true,
    }
}

fn with_mutable(h: &str, m: MutableDirFacts) -> HierarchyFacts {
    HierarchyFacts {
        mutable_dir: Some(m),
        ..host(h)
    }
}

pub(crate) fn must_plan(
    mode: MutableMode,
    f: &HierarchyFacts,
    e: &[String],
    env: Option<&str>,
) -> HierarchyPlan {
    plan(mode, f, e, env).unwrap().unwrap()
}

pub(crate) fn defaults() -> Vec<String> {
    ext(&["redirect_dir=on", "metacopy=off", "index=off"])
}

#[test]
fn hierarchy_component_strips_slashes_and_joins_with_dots() {
    assert_eq!(hierarchy_component(Path::new("/usr")), "usr");
    assert_eq!(hierarchy_component(Path::new("/foo/bar")), "foo.bar");
    assert_eq!(
        hierarchy_component(Path::new("//foo/bar/baz//")),
        "foo.bar.baz"
    );
    assert_eq!(
        mutable_dir_for(Path::new("/etc")),
        p("/var/lib/extensions.mutable/etc")
    );
    assert_eq!(
        mutable_dir_for(Path::new("/foo/bar")),
        p("/var/lib/extensions.mutable/foo.bar")
    );
    assert_eq!(work_dir_name(Path::new("/opt")), ".systemd-opt-workdir");
}

#[test]
fn t50_12_mutable_symlink_to_hierarchy_is_self_upper() {
    for mode in [MutableMode::Auto, MutableMode::Yes] {
        let f = with_mutable("/etc", self_linked("/etc"));
        let pl = must_plan(mode, &f, &ext(&["docker", "00-flatcar-default"]), None);
        assert_eq!(
            pl.upper,
            Some(UpperDir::Persistent {
                upper: p("/etc"),
                work: p("/.systemd-etc-workdir")
            })
        );
        assert!(pl.self_upper);
        assert!(!pl.host_is_lower);
        assert_eq!(
            pl.lowers,
            vec![
                Layer::Meta,
                Layer::Extension("docker".into()),
                Layer::Extension("00-flatcar-default".into())
            ]
        );
        assert_eq!(pl.options, defaults());
        assert!(pl.noatime);
        assert_eq!(pl.flag_words, ext(&["noatime"]));
        assert!(!pl.read_only);
        assert_eq!(pl.top_mode, 0o755);
    }
}

#[test]
fn t50_7_auto_with_mutable_dir_is_writable_over_host() {
    let f = with_mutable("/opt", separate_mutable("/opt"));
    let pl = must_plan(MutableMode::Auto, &f, &ext(&["test-extension"]), None);
    assert_eq!(
        pl.upper,
        Some(UpperDir::Persistent {
            upper: p("/var/lib/extensions.mutable/opt"),
            work: p("/var/lib/extensions.mutable/.systemd-opt-workdir"),
        })
    );
    assert_eq!(
        pl.lowers,
        vec![
            Layer::Meta,
            Layer::Extension("test-extension".into()),
            Layer::Host(p("/opt"))
        ]
    );
    assert!(pl.host_is_lower && !pl.self_upper && !pl.read_only);
}

#[test]
fn t50_8_default_mutable_options_and_env_options_replace_defaults() {
    let f = with_mutable("/opt", separate_mutable("/opt"));
    let e = ext(&["test-extension"]);
    let pl = must_plan(MutableMode::Auto, &f, &e, None);
    assert_eq!(pl.options, defaults());
    assert!(pl.noatime);
    let pl = must_plan(MutableMode::Auto, &f, &e, Some("relatime,metacopy=on"));
    assert_eq!(pl.options, ext(&["metacopy=on"]));
    assert_eq!(pl.flag_words, ext(&["relatime"]));
    assert!(!pl.noatime);
    assert!(!pl
        .options
        .iter()
        .any(|o| o == "index=off" || o == "redirect_dir=on"));
}

#[test]
fn empty_env_options_remove_the_mutable_defaults() {
    let f = with_mutable("/opt", separate_mutable("/opt"));
    let pl = must_plan(MutableMode::Yes, &f, &ext(&["a"]), Some(""));
    assert!(pl.options.is_empty() && pl.flag_words.is_empty() && !pl.noatime);
}

#[test]
fn t50_1_read_only_merge_has_no_default_options() {
    let pl = must_plan(
        MutableMode::No,
        &host("/opt"),
        &ext(&["test-extension"]),
        None,
    );
    assert!(pl.read_only && pl.upper.is_none());
    assert!(pl.options.is_empty() && pl.flag_words.is_empty() && !pl.noatime);
    assert_eq!(
        pl.lowers,
        vec![
            Layer::Meta,
            Layer::Extension("test-extension".into()),
            Layer::Host(p("/opt"))
        ]
    );
    assert!(pl.host_is_lower);
}

#[test]
fn t50_2_read_only_env_options_are_appended() {
    let pl = must_plan(
        MutableMode::No,
        &host("/opt"),
        &ext(&["e"]),
        Some("metacopy=off,noatime"),
    );
    assert!(pl.read_only);
    assert_eq!(pl.options, ext(&["metacopy=off"]));
    assert!(pl.noatime);
}

#[test]
fn env_flag_words_are_mount_flags_not_data_options() {
    let f = with_mutable("/opt", separate_mutable("/opt"));
    let pl = must_plan(
        MutableMode::Yes,
        &f,
        &ext(&["e"]),
        Some("ro,,nodev,lowerdir+=x,'a,b',x-foo,X-Bar,defaults"),
    );
    assert_eq!(pl.flag_words, ext(&["ro", "nodev"]));
    // Quotes are kept (EXTRACT_KEEP_QUOTE); x-* are dropped; "defaults" is not a Linux flag word.
    assert_eq!(pl.options, ext(&["lowerdir+=x", "'a,b'", "defaults"]));
    // "ro" re-sets MS_RDONLY after the writable overlay cleared it, exactly like systemd.
    let flags = pl.mount_flags(MountFlags::RDONLY | MountFlags::NODEV, None);
    assert!(flags.contains(MountFlags::RDONLY | MountFlags::NODEV));
}

#[test]
fn backslash_escapes_and_unbalanced_quotes_follow_extract_first_word() {
    assert_eq!(split_options("a\\,b,c"), Some(ext(&["a,b", "c"])));
    assert_eq!(split_options(",,a,,"), Some(ext(&["a"])));
    assert_eq!(split_options("\"x,y\"z"), Some(ext(&["\"x,y\"z"])));
    assert_eq!(split_options(""), Some(vec![]));
    assert_eq!(split_options("a\\"), None);
    assert_eq!(split_options("'a"), None);
    let f = with_mutable("/opt", separate_mutable("/opt"));
    let err = plan(MutableMode::Yes, &f, &ext(&["e"]), Some("metacopy='on")).unwrap_err();
    assert!(matches!(err, PlanError::InvalidOptions { .. }));
    assert_eq!(err.errno(), "EINVAL");
}

#[test]
fn mount_flags_clear_rdonly_for_writable_and_honour_noexec_and_words() {
    let confext_default =
        MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC;
    let f = with_mutable("/etc", self_linked("/etc"));
    let pl = must_plan(MutableMode::Auto, &f, &ext(&["a"]), None);
    let flags = pl.mount_flags(confext_default, None);
    assert!(!flags.contains(MountFlags::RDONLY));
    assert!(flags.contains(
        MountFlags::NOATIME | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC
    ));
    assert!(!pl
        .mount_flags(confext_default, Some(false))
        .contains(MountFlags::NOEXEC));
    let ro = must_plan(
        MutableMode::No,
        &host("/usr"),
        &ext(&["a"]),
        Some("rw,exec"),
    );
    let flags = ro.mount_flags(MountFlags::RDONLY | MountFlags::NODEV, Some(true));
    assert!(!flags.contains(MountFlags::RDONLY) && !flags.contains(MountFlags::NOEXEC));
    assert_eq!(
        apply_flag_words(MountFlags::empty(), &ext(&["noatime", "atime", "relatime"])),
        MountFlags::RELATIME
    );
}

#[test]
fn t50_29_ephemeral_import_self_link_is_eloop() {
    let f = with_mutable("/opt", self_linked("/opt"));
    let err = plan(MutableMode::EphemeralImport, &f, &ext(&["e"]), None).unwrap_err();
    assert!(matches!(err, PlanError::Loop { .. }));
    assert_eq!(err.errno(), "ELOOP");
    assert!(err.to_string().contains("/opt"));
}

#[test]
fn t50_30_import_self_link_is_eloop() {
    let f = with_mutable("/opt", self_linked("/opt"));
    let err = plan(MutableMode::Import, &f, &ext(&["e"]), None).unwrap_err();
    assert!(matches!(err, PlanError::Loop { .. }));
}

#[test]
fn t50_13_self_upper_on_read_only_fs_is_erofs() {
    let mut m = self_linked("/opt");
    m.on_read_only_fs = true;
    let f = HierarchyFacts {
        read_only_fs: true,
        ..with_mutable("/opt", m)
    };
    let err = plan(MutableMode::Auto, &f, &ext(&["e"]), None).unwrap_err();
    assert!(matches!(err, PlanError::ReadOnlyUpper { ref dir } if dir == Path::new("/opt")));
    assert_eq!(err.errno(), "EROFS");
}

#[test]
fn t50_36_mode_mismatch_is_einval() {
    for mode in [MutableMode::Yes, MutableMode::Auto] {
        let mut m = separate_mutable("/opt");
        m.mode = 0o700;
        let err = plan(mode, &with_mutable("/opt", m), &ext(&["e"]), None).unwrap_err();
        assert!(matches!(
            err,
            PlanError::ModeMismatch {
                have: 0o700,
                want: 0o755,
                ..
            }
        ));
        assert_eq!(err.errno(), "EINVAL");
        assert!(err.to_string().contains("/var/lib/extensions.mutable/opt"));
        assert!(err.to_string().contains("0700") && err.to_string().contains("0755"));
    }
}

#[test]
fn mode_mismatch_is_not_checked_for_import() {
    let mut m = separate_mutable("/opt");
    m.mode = 0o700;
    let pl = must_plan(
        MutableMode::Import,
        &with_mutable("/opt", m),
        &ext(&["e"]),
        None,
    );
    assert!(pl.read_only);
}

#[test]
fn t50_14_dangling_symlink_means_read_only() {
    // gather_facts reports a dangling mutable symlink as no mutable dir.
    let pl = must_plan(MutableMode::Auto, &host("/opt"), &ext(&["e"]), None);
    assert!(pl.read_only && pl.upper.is_none() && pl.options.is_empty());
    assert_eq!(
        pl.lowers,
        vec![
            Layer::Meta,
            Layer::Extension("e".into()),
            Layer::Host(p("/opt"))
        ]
    );
}

#[test]
fn t50_18_auto_without_mutable_dir_is_read_only() {
    let pl = must_plan(MutableMode::Auto, &host("/opt"), &ext(&["e"]), None);
    assert!(pl.read_only);
}

#[test]
fn t50_6_t50_15_mode_no_ignores_an_existing_mutable_dir() {
    let f = with_mutable("/opt", separate_mutable("/opt"));
    let pl = must_plan(MutableMode::No, &f, &ext(&["e"]), None);
    assert!(pl.read_only && pl.upper.is_none());
    assert!(!pl.lowers.iter().any(|l| matches!(l, Layer::Import(_))));
}

#[test]
fn t50_4_missing_hierarchy_is_not_a_lower() {
    let f = HierarchyFacts {
        exists: false,
        ..host("/opt")
    };
    let pl = must_plan(MutableMode::No, &f, &ext(&["e"]), None);
    assert_eq!(pl.lowers, vec![Layer::Meta, Layer::Extension("e".into())]);
    assert!(!pl.host_is_lower);
}

#[test]
fn t50_5_empty_hierarchy_is_not_a_lower() {
    let f = HierarchyFacts {
        is_empty: true,
        ..host("/opt")
    };
    let pl = must_plan(MutableMode::No, &f, &ext(&["e"]), None);
    assert_eq!(pl.lowers, vec![Layer::Meta, Layer::Extension("e".into())]);
}

#[test]
fn t50_9_t50_10_auto_with_missing_or_empty_hierarchy_is_writable_without_host() {
    for f in [
        HierarchyFacts {
            exists: false,
            ..with_mutable("/opt", separate_mutable("/opt"))
        },
        HierarchyFacts {
            is_empty: true,
            ..with_mutable("/opt", separate_mutable("/opt"))
        },
    ] {
        let pl = must_plan(MutableMode::Auto, &f, &ext(&["e"]), None);
        assert!(!pl.read_only && !pl.host_is_lower);
        assert_eq!(pl.lowers, vec![Layer::Meta, Layer::Extension("e".into())]);
    }
}

#[test]
fn t50_16_import_adds_mutable_dir_just_below_meta_read_only() {
    let f = with_mutable("/opt", separate_mutable("/opt"));
    let pl = must_plan(MutableMode::Import, &f, &ext(&["e"]), None);
    assert_eq!(
        pl.lowers,
        vec![
            Layer::Meta,
            Layer::Import(p("/var/lib/extensions.mutable/opt")),
            Layer::Extension("e".into()),
            Layer::Host(p("/opt")),
        ]
    );
    assert!(pl.read_only && pl.upper.is_none() && pl.options.is_empty());
}

#[test]
fn t50_25_ephemeral_is_writable_on_tmpfs_with_host_lower() {
    // Even a self-linked mutable dir is irrelevant: ephemeral never looks inside the root.
    let f = with_mutable("/opt", self_linked("/opt"));
    let pl = must_plan(MutableMode::Ephemeral, &f, &ext(&["e"]), None);
    assert_eq!(pl.upper, Some(UpperDir::Ephemeral));
    assert_eq!(
        pl.lowers,
        vec![
            Layer::Meta,
            Layer::Extension("e".into()),
            Layer::Host(p("/opt"))
        ]
    );
    assert!(!pl.read_only && !pl.self_upper);
    assert_eq!(pl.options, defaults());
}

#[test]
fn t50_27_ephemeral_import_imports_mutable_dir_and_keeps_host() {
    let f = with_mutable("/opt", separate_mutable("/opt"));
    let pl = must_plan(MutableMode::EphemeralImport, &f, &ext(&["e"]), None);
    assert_eq!(
        pl.lowers,
        vec![
            Layer::Meta,
            Layer::Import(p("/var/lib/extensions.mutable/opt")),
            Layer::Extension("e".into()),
            Layer::Host(p("/opt")),
        ]
    );
    assert_eq!(pl.upper, Some(UpperDir::Ephemeral));
    let pl = must_plan(
        MutableMode::EphemeralImport,
        &host("/opt"),
        &ext(&["e"]),
        None,
    );
    assert_eq!(
        pl.lowers,
        vec![
            Layer::Meta,
            Layer::Extension("e".into()),
            Layer::Host(p("/opt"))
        ]
    );
}

#[test]
fn s4_7_no_extensions_with_mode_no_leaves_hierarchy_alone() {
    assert!(plan(MutableMode::No, &host("/usr"), &[], None)
        .unwrap()
        .is_none());
}

#[test]
fn s4_7_auto_without_extensions_or_mutable_dir_is_read_only_meta_over_host() {
    let pl = must_plan(MutableMode::Auto, &host("/usr"), &[], None);
    assert!(pl.read_only);
    assert_eq!(pl.lowers, vec![Layer::Meta, Layer::Host(p("/usr"))]);
}

#[test]
fn s4_7_mutable_without_extensions_and_without_host_is_left_alone() {
    for f in [
        HierarchyFacts {
            exists: false,
            ..host("/opt")
        },
        HierarchyFacts {
            is_empty: true,
            ..host("/opt")
        },
    ] {
        // systemd fails the class here; the hierarchy is left alone instead (README).
        assert!(matches!(plan(MutableMode::Auto, &f, &[], None), Ok(None)));
        assert!(matches!(plan(MutableMode::Import, &f, &[], None), Ok(None)));
    }
}

#[test]
fn s4_7_yes_without_extensions_over_empty_hierarchy_is_a_valid_overlay() {
    let f = HierarchyFacts {
        is_empty: true,
        ..with_mutable("/opt", separate_mutable("/opt"))
    };
    let pl = must_plan(MutableMode::Yes, &f, &[], None);
    assert_eq!(pl.lowers, vec![Layer::Meta]);
    assert!(pl.upper.is_some());
}

#[test]
fn workdir_parent_on_another_fs_is_exdev() {
    let mut m = separate_mutable("/opt");
    m.parent_same_fs = false;
    let err = plan(
        MutableMode::Auto,
        &with_mutable("/opt", m),
        &ext(&["e"]),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::CrossDevice { .. }));
    assert_eq!(err.errno(), "EXDEV");
}

#[test]
fn extensions_keep_the_callers_top_first_order() {
    let pl = must_plan(MutableMode::No, &host("/usr"), &ext(&["c", "b", "a"]), None);
    let names: Vec<&str> = pl
        .lowers
        .iter()
        .filter_map(|l| match l {
            Layer::Extension(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["c", "b", "a"]);
}

#[test]
fn t50_31_top_mode_is_the_hierarchy_mode() {
    let f = HierarchyFacts {
        mode: 0o750,
        ..host("/opt")
    };
    assert_eq!(
        must_plan(MutableMode::No, &f, &ext(&["e"]), None).top_mode,
        0o750
    );
    let mut m = separate_mutable("/opt");
    m.mode = 0o750;
    let f = HierarchyFacts {
        mode: 0o750,
        ..with_mutable("/opt", m)
    };
    assert_eq!(
        must_plan(MutableMode::Yes, &f, &ext(&["e"]), None).top_mode,
        0o750
    );
}
