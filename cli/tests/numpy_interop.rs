//! NumPy itself reads what `ach export` writes and writes what `ach import`
//! reads, with every number the same to the bit.
//!
//! Needs a Python with NumPy: `$ACH_PYTHON`, else `python3`. Without one
//! each test prints a `SKIPPED: ...` line that `cargo test` shows (see
//! `common::python`) and returns, unless `ACH_REQUIRE_NUMPY=1` (as `.ci/run`
//! sets), in which case it fails.

mod common;

use achronyme_env::*;
use common::{ach, hex, python, run_python};
use serde_json::Value as Json;

fn shape_json(shape: &[usize]) -> Json {
    serde_json::json!(shape)
}

const READ_EXPORTS: &str = r#"
import json, os, sys
import numpy as np
d = sys.argv[1]
out = {}
for f in sorted(os.listdir(d)):
    p = os.path.join(d, f)
    if f.endswith(".npy"):
        a = np.load(p, allow_pickle=False)
    elif f.endswith(".csv"):
        a = np.loadtxt(p, delimiter=",", dtype=np.float64)
    else:
        continue
    out[f] = {"dtype": str(a.dtype), "shape": list(a.shape), "c_contiguous": bool(a.flags.c_contiguous),
              "hex": np.ascontiguousarray(a).tobytes().hex()}
print(json.dumps(out))
"#;

#[test]
fn numpy_reads_what_ach_exports() {
    let Some(py) = python("numpy_reads_what_ach_exports") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let special = vec![
        0.5,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e-310,
        5e-324,
        1e300,
        -1.0 / 3.0,
        2.0f64.sqrt(),
        42.0,
        f64::MAX,
    ];
    let mut env = Environment::new();
    let tensors: Vec<(&str, Tensor)> = vec![
        ("matrix", Tensor::new(vec![3, 4], special.clone()).unwrap()),
        ("vector", Tensor::from_vec(special.clone())),
        ("cube", Tensor::new(vec![2, 3, 2], special.clone()).unwrap()),
        ("scalar", Tensor::new(vec![], vec![6.25]).unwrap()),
        ("empty", Tensor::new(vec![0, 3], vec![]).unwrap()),
        ("noise", testdata::normal_tensor(300, 200, 9)),
    ];
    for (name, t) in &tensors {
        env.set(*name, Value::Tensor(t.clone()));
    }
    let spectrum = ComplexTensor::new(
        vec![2, 3],
        (0..6)
            .map(|i| Complex::new(special[i], special[11 - i]))
            .collect(),
    )
    .unwrap();
    env.set("spectrum", Value::ComplexTensor(spectrum.clone()));
    let path = dir.path().join("w.ach");
    save_environment(&env, &path, &SaveOptions::default()).unwrap();

    let export = |name: &str, file: &str| {
        let out = ach(&[
            "export",
            path.to_str().unwrap(),
            name,
            "-o",
            files.join(file).to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for (name, _) in &tensors {
        export(name, &format!("{name}.npy"));
    }
    export("spectrum", "spectrum.npy");
    export("matrix", "matrix.csv");
    export("vector", "vector.csv");
    export("noise", "noise.csv");

    let seen = run_python(&py, READ_EXPORTS, &files);
    for (name, t) in &tensors {
        let got = &seen[format!("{name}.npy")];
        assert_eq!(got["dtype"], "float64", "{name}");
        assert_eq!(got["shape"], shape_json(t.shape()), "{name}");
        assert_eq!(got["c_contiguous"], true, "{name}");
        assert_eq!(got["hex"], hex(bytemuck::cast_slice(t.data())), "{name}");
    }
    let got = &seen["spectrum.npy"];
    assert_eq!(got["dtype"], "complex128");
    assert_eq!(got["shape"], serde_json::json!([2, 3]));
    assert_eq!(got["hex"], hex(bytemuck::cast_slice(spectrum.data())));
    for name in ["matrix", "vector", "noise"] {
        let t = &tensors.iter().find(|(n, _)| *n == name).unwrap().1;
        let got = &seen[format!("{name}.csv")];
        assert_eq!(got["shape"], shape_json(t.shape()), "{name}.csv");
        assert_eq!(
            got["hex"],
            hex(bytemuck::cast_slice(t.data())),
            "{name}.csv"
        );
    }
}

const WRITE_ARRAYS: &str = r#"
import json, os, sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
arrays = {
    "f8": rng.standard_normal((40, 30)),
    "f8_special": np.array([0.5, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e300]),
    "f4": rng.standard_normal((5, 7)).astype(np.float32),
    "f2": np.array([1.5, -2.25, 65504.0], dtype=np.float16),
    "i8": np.array([-(2**62), -1, 0, 2**53 + 1, 2**62], dtype=np.int64),
    "i4": np.arange(-6, 6, dtype=np.int32).reshape(3, 4),
    "i2": np.array([-32768, 32767], dtype=np.int16),
    "i1": np.array([-128, 127], dtype=np.int8),
    "u8": np.array([0, 2**64 - 1], dtype=np.uint64),
    "u1": np.arange(256, dtype=np.uint8),
    "b1": np.array([[True, False], [False, True]]),
    "c16": (rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))),
    "c8": np.array([1 + 2j, -0.5 - 4j], dtype=np.complex64),
    "be": rng.standard_normal(9).astype(">f8"),
    "be_i4": np.array([1, -2, 300000], dtype=">i4"),
    "fortran2": np.asfortranarray(rng.standard_normal((6, 5))),
    "fortran3": np.asfortranarray(np.arange(24.0).reshape(2, 3, 4)),
    "scalar": np.float64(2.5),
    "empty": np.zeros((0, 4)),
}
expected = {}
for name, a in arrays.items():
    a = np.asarray(a)
    np.save(os.path.join(d, name + ".npy"), a)
    target = np.complex128 if np.iscomplexobj(a) else np.float64
    c = a.astype(target, order="C")
    expected[name] = {"shape": list(c.shape), "complex": bool(np.iscomplexobj(a)),
                      "fortran": bool(a.flags.f_contiguous and not a.flags.c_contiguous),
                      "hex": c.astype(c.dtype.newbyteorder("<")).tobytes().hex()}
print(json.dumps(expected))
"#;

#[test]
fn ach_imports_what_numpy_writes() {
    let Some(py) = python("ach_imports_what_numpy_writes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let expected = run_python(&py, WRITE_ARRAYS, dir.path());
    let expected = expected.as_object().unwrap();
    let out_path = dir.path().join("imported.ach");
    let specs: Vec<String> = expected
        .keys()
        .map(|k| {
            dir.path()
                .join(format!("{k}.npy"))
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut args = vec!["import", out_path.to_str().unwrap()];
    args.extend(specs.iter().map(String::as_str));
    let out = ach(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    // A note for each converted dtype, none for float64 and complex128.
    for name in ["f4", "f2", "i8", "i4", "u1", "b1", "c8", "be", "be_i4"] {
        assert!(
            stderr.contains(&format!(
                "note: {}",
                dir.path().join(format!("{name}.npy")).display()
            )),
            "{name}: {stderr}"
        );
    }
    assert!(stderr.contains("int64 converted to float64"), "{stderr}");
    assert!(
        stderr.contains("Fortran-ordered data transposed"),
        "{stderr}"
    );
    for name in ["f8.npy", "c16.npy", "scalar.npy"] {
        assert!(!stderr.contains(&format!("{name}: ")), "{name}: {stderr}");
    }

    let archive = Archive::open(&out_path).unwrap();
    archive.verify().unwrap();
    assert_eq!(archive.names(Section::Bindings).count(), expected.len());
    for (name, want) in expected {
        let value = archive.get(name).unwrap();
        let (shape, bytes): (Vec<usize>, Vec<u8>) = match (&value, want["complex"].as_bool()) {
            (Value::Tensor(t), Some(false)) => {
                (t.shape().to_vec(), bytemuck::cast_slice(t.data()).to_vec())
            }
            (Value::ComplexTensor(t), Some(true)) => {
                (t.shape().to_vec(), bytemuck::cast_slice(t.data()).to_vec())
            }
            (v, _) => panic!("{name}: imported as {}", v.type_name()),
        };
        assert_eq!(shape_json(&shape), want["shape"], "{name}");
        assert_eq!(hex(&bytes), want["hex"], "{name}: values differ");
    }
    assert_eq!(expected["fortran3"]["fortran"], true);

    // And back out again: NumPy reads the export of an import bit for bit.
    let files = dir.path().join("back");
    std::fs::create_dir(&files).unwrap();
    for name in ["f8", "c16", "fortran3", "i8"] {
        let out = ach(&[
            "export",
            out_path.to_str().unwrap(),
            name,
            "-o",
            files.join(format!("{name}.npy")).to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let seen = run_python(&py, READ_EXPORTS, &files);
    for name in ["f8", "c16", "fortran3", "i8"] {
        let got = &seen[format!("{name}.npy")];
        assert_eq!(got["hex"], expected[name]["hex"], "{name}");
        assert_eq!(got["shape"], expected[name]["shape"], "{name}");
    }
}
