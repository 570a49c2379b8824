//! The seeded datasets the simulated APIs serve: Yida process instances (seed 001), Jushuitan
//! shops (seed 002) and OKKI users (seed 003).
//!
//! Everything is generated once at start-up from the seed, in a fixed order that the APIs keep
//! (Yida: newest first, ties by position), so paging is stable and `GET /_sandbox/data/{name}`
//! can hand tests the exact records they should end up with. Text is Chinese, and some remarks
//! carry emoji, so that a pipeline that loses utf8mb4 characters fails its tests.

use chrono::{DateTime, TimeZone as _, Utc};
use serde::Serialize;

use crate::prng::SplitMix64;

/// The Yida form the instances belong to (seed 001's `formUuid`).
pub(crate) const YIDA_FORM_UUID: &str = "FORM-0IA66C71A4V9JSAX6MEV45W77QOO2WI78EHGLQ";
/// Number of Jushuitan shops.
pub(crate) const JUSHUITAN_SHOP_COUNT: usize = 237;
/// Number of OKKI users.
pub(crate) const OKKI_USER_COUNT: usize = 42;

const DAY_MS: i64 = 86_400_000;
/// Yida create times spread over this many days before the anchor.
const YIDA_SPAN_DAYS: i64 = 60;

const SALT_YIDA: u64 = 1;
const SALT_JUSHUITAN: u64 = 2;
const SALT_OKKI: u64 = 3;

const SURNAMES: &[(&str, &str)] = &[
    ("张", "Zhang"),
    ("王", "Wang"),
    ("李", "Li"),
    ("赵", "Zhao"),
    ("陈", "Chen"),
    ("刘", "Liu"),
    ("杨", "Yang"),
    ("黄", "Huang"),
    ("周", "Zhou"),
    ("吴", "Wu"),
    ("欧阳", "Ouyang"),
];
const GIVEN_NAMES: &[(&str, &str)] = &[
    ("伟", "Wei"),
    ("芳", "Fang"),
    ("娜", "Na"),
    ("敏", "Min"),
    ("静", "Jing"),
    ("磊", "Lei"),
    ("洋", "Yang"),
    ("婷婷", "Tingting"),
    ("建国", "Jianguo"),
    ("晓明", "Xiaoming"),
    ("思远", "Siyuan"),
    ("雨桐", "Yutong"),
];
const DEPARTMENTS: &[&str] = &[
    "财务部",
    "销售一部",
    "销售二部",
    "市场部",
    "技术部",
    "客服部",
    "行政部",
];
const REFUND_KINDS: &[&str] = &["借款核销", "费用报销", "退还余额"];
const REASONS: &[&str] = &[
    "出差北京差旅费",
    "客户招待餐费",
    "办公用品采购",
    "培训报名费",
    "项目组团建",
    "班级活动经费",
    "展会物料 🎪",
    "高铁票报销 🚄",
];

/// A person in the generated data.
struct Person {
    chinese: String,
    english: String,
}

fn person(rng: &mut SplitMix64) -> Person {
    let (surname, surname_en) = *rng.pick(SURNAMES);
    let (given, given_en) = *rng.pick(GIVEN_NAMES);
    Person {
        chinese: format!("{surname}{given}"),
        english: format!("{given_en} {surname_en}"),
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, the sandbox's wall-clock format.
pub(crate) fn format_datetime(ms: i64) -> String {
    utc(ms).format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(crate) fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

// ---------------------------------------------------------------------------------------------
// Yida
// ---------------------------------------------------------------------------------------------

/// One Yida process instance, serialised exactly as the list API returns it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct YidaInstance {
    pub process_instance_id: String,
    pub title: String,
    pub form_uuid: &'static str,
    pub instance_status: &'static str,
    pub approved_result: &'static str,
    #[serde(rename = "createTimeGMT")]
    pub create_time_gmt: String,
    #[serde(rename = "modifiedTimeGMT")]
    pub modified_time_gmt: String,
    pub version: u32,
    pub data: YidaForm,
    pub originator: Originator,
    #[serde(skip)]
    pub create_ms: i64,
    #[serde(skip)]
    pub modified_ms: i64,
}

/// The form values of seed 001's refund form.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct YidaForm {
    /// 事由 (reason).
    #[serde(rename = "textField_lgk9jn2r")]
    pub reason: String,
    /// 单号 (serial number).
    #[serde(rename = "serialNumberField_lgk9jn2s")]
    pub serial_number: String,
    /// 备注 (remark; sometimes with emoji).
    #[serde(rename = "textField_lgk9jn2t")]
    pub remark: String,
    /// 费用报销类型 (refund kind).
    #[serde(rename = "radioField_lgk9jn2v")]
    pub refund_kind: &'static str,
    /// 日期 (epoch ms).
    #[serde(rename = "dateField_lgkieplu")]
    pub date_ms: i64,
    /// 金额 (amount, two decimals).
    #[serde(rename = "numberField_lgkiepjv")]
    pub amount: f64,
    /// 是否退还余额 ("是"/"否").
    #[serde(rename = "selectField_lgkiepju")]
    pub returns_balance: &'static str,
}

/// A form value as the search filter sees it.
pub(crate) enum FormValue<'a> {
    Text(&'a str),
    Choice(&'a str),
    Number(f64),
    Date(i64),
}

impl YidaForm {
    /// The value of a form field by its Yida name, `None` for fields this form does not have.
    pub(crate) fn field(&self, name: &str) -> Option<FormValue<'_>> {
        Some(match name {
            "textField_lgk9jn2r" => FormValue::Text(&self.reason),
            "serialNumberField_lgk9jn2s" => FormValue::Text(&self.serial_number),
            "textField_lgk9jn2t" => FormValue::Text(&self.remark),
            "radioField_lgk9jn2v" => FormValue::Choice(self.refund_kind),
            "selectField_lgkiepju" => FormValue::Choice(self.returns_balance),
            "dateField_lgkieplu" => FormValue::Date(self.date_ms),
            "numberField_lgkiepjv" => FormValue::Number(self.amount),
            _ => return None,
        })
    }
}

/// Who submitted the instance.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Originator {
    pub user_id: String,
    pub name: OriginatorName,
    pub dept_name: &'static str,
}

/// The originator's name in both languages.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OriginatorName {
    pub name_in_chinese: String,
    pub name_in_english: String,
}

/// Yida's own time format in list answers (minute precision, UTC).
fn yida_time(ms: i64) -> String {
    utc(ms).format("%Y-%m-%dT%H:%MZ").to_string()
}

/// `count` instances, newest first (ties keep generation order), so pages are stable.
pub(crate) fn yida_instances(seed: u64, count: usize, anchor_ms: i64) -> Vec<YidaInstance> {
    let mut rng = SplitMix64::new(seed, SALT_YIDA);
    let mut out = Vec::with_capacity(count);
    for index in 0..count {
        let create_ms = anchor_ms - (rng.below((YIDA_SPAN_DAYS * DAY_MS) as u64) as i64) - 1;
        let modified_ms = (create_ms + rng.below((3 * DAY_MS) as u64) as i64).min(anchor_ms);
        let who = person(&mut rng);
        let (instance_status, approved_result) = match rng.below(100) {
            0..=79 => (
                "COMPLETED",
                if rng.chance(85) { "agree" } else { "disagree" },
            ),
            80..=91 => ("RUNNING", ""),
            _ => ("TERMINATED", ""),
        };
        let cents = 100 + rng.below(5_000_000) as i64;
        let remark = if rng.chance(20) {
            format!("{}，已核对 ✅", rng.pick(REASONS))
        } else {
            String::new()
        };
        let form = YidaForm {
            reason: (*rng.pick(REASONS)).to_string(),
            serial_number: format!("BXTK{}{:06}", utc(create_ms).format("%Y%m%d"), index + 1),
            remark,
            refund_kind: rng.pick::<&str>(REFUND_KINDS),
            date_ms: create_ms - (create_ms.rem_euclid(DAY_MS)),
            amount: cents as f64 / 100.0,
            returns_balance: if rng.chance(70) { "是" } else { "否" },
        };
        out.push(YidaInstance {
            process_instance_id: format!(
                "{:08x}-{:04x}-{:06x}",
                rng.next_u64() as u32,
                rng.next_u64() as u16,
                index
            ),
            title: format!("{}提交的报销退款单", who.chinese),
            form_uuid: YIDA_FORM_UUID,
            instance_status,
            approved_result,
            create_time_gmt: yida_time(create_ms),
            modified_time_gmt: yida_time(modified_ms),
            version: 1 + rng.below(3) as u32,
            data: form,
            originator: Originator {
                user_id: format!("{:017}", 16_000_000_000_000_000u64 + rng.below(1_000_000)),
                name: OriginatorName {
                    name_in_chinese: who.chinese,
                    name_in_english: who.english,
                },
                dept_name: rng.pick::<&str>(DEPARTMENTS),
            },
            create_ms,
            modified_ms,
        });
    }
    // Stable sort: equal create times keep their generation order.
    out.sort_by_key(|instance| std::cmp::Reverse(instance.create_ms));
    out
}

// ---------------------------------------------------------------------------------------------
// Jushuitan
// ---------------------------------------------------------------------------------------------

/// One Jushuitan shop, with seed 002's fields.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Shop {
    pub shop_id: i64,
    pub shop_name: String,
    pub co_id: i64,
    pub shop_site: &'static str,
    pub shop_url: String,
    pub created: String,
    pub nick: String,
    pub session_expired: String,
    pub session_uid: String,
    pub short_name: String,
    pub group_id: i64,
    pub group_name: &'static str,
}

const SHOP_SITES: &[(&str, &str)] = &[
    ("淘宝天猫", "https://shop{}.taobao.com"),
    ("京东", "https://mall.jd.com/index-{}.html"),
    (
        "拼多多",
        "https://mobile.yangkeduo.com/mall_page.html?mall_id={}",
    ),
    ("抖音", "https://haohuo.jinritemai.com/shop/{}"),
    ("快手", "https://kwaixiaodian.com/shop/{}"),
];
const SHOP_BRANDS: &[&str] = &[
    "斯莱蒙",
    "云朵",
    "森屿",
    "青禾",
    "木槿",
    "星河",
    "暖阳",
    "南山",
    "北辰",
    "海棠",
];
const SHOP_KINDS: &[&str] = &[
    "旗舰店",
    "专卖店",
    "官方店",
    "生活馆",
    "家居馆",
    "童装店",
    "🌸 花园店",
];
const SHOP_GROUPS: &[&str] = &["华东事业部", "华南事业部", "直营电商", "分销渠道"];

/// The shops, in `shop_id` order (the order the API pages them in).
pub(crate) fn jushuitan_shops(seed: u64) -> Vec<Shop> {
    let mut rng = SplitMix64::new(seed, SALT_JUSHUITAN);
    let co_id = 10_000_000 + rng.below(1_000_000) as i64;
    // 2019-01-01T00:00:00Z: shops were created over the following five years.
    let base_ms = 1_546_300_800_000i64;
    (0..JUSHUITAN_SHOP_COUNT)
        .map(|index| {
            let shop_id = 10_000_000 + (index as i64) * 7 + rng.below(7) as i64;
            let (site, url) = *rng.pick(SHOP_SITES);
            let brand = rng.pick(SHOP_BRANDS);
            let kind = rng.pick(SHOP_KINDS);
            let group = rng.below(SHOP_GROUPS.len() as u64) as usize;
            let created_ms = base_ms + rng.below((5 * 365 * DAY_MS) as u64) as i64;
            let expires_ms = created_ms + (365 + rng.below(3 * 365) as i64) * DAY_MS;
            Shop {
                shop_id,
                shop_name: format!("{brand}{kind}{:03}", index + 1),
                co_id,
                shop_site: site,
                shop_url: url.replace("{}", &shop_id.to_string()),
                created: format_datetime(created_ms),
                nick: format!("{brand}{}", index + 1),
                session_expired: format_datetime(expires_ms),
                session_uid: format!("{:x}", rng.next_u64()),
                short_name: (*brand).to_string(),
                group_id: group as i64 + 1,
                group_name: SHOP_GROUPS[group],
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// OKKI
// ---------------------------------------------------------------------------------------------

/// One OKKI CRM user.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct User {
    pub user_id: i64,
    pub email: String,
    pub nickname: String,
    pub family_name: String,
    pub second_name: String,
    pub full_name: String,
    pub gender: u8,
    pub position: &'static str,
    pub enable_flag: u8,
    pub user_mobile: String,
    pub employee_no: String,
    pub department_id: i64,
    pub department_name: &'static str,
    pub departments: Vec<Department>,
}

/// A department a user belongs to.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Department {
    pub department_id: i64,
    pub department_name: &'static str,
}

const POSITIONS: &[&str] = &["销售经理", "客户经理", "销售助理", "区域总监", "外贸业务员"];

fn department(index: usize) -> Department {
    let index = index % DEPARTMENTS.len();
    Department {
        department_id: 1000 + index as i64,
        department_name: DEPARTMENTS[index],
    }
}

/// The users, in `user_id` order. Nicknames are unique (seed 003 uses them as the record id).
pub(crate) fn okki_users(seed: u64) -> Vec<User> {
    let mut rng = SplitMix64::new(seed, SALT_OKKI);
    (0..OKKI_USER_COUNT)
        .map(|index| {
            let (surname, surname_en) = *rng.pick(SURNAMES);
            let (given, given_en) = *rng.pick(GIVEN_NAMES);
            let main = rng.below(DEPARTMENTS.len() as u64) as usize;
            let mut departments = vec![department(main)];
            if rng.chance(30) {
                departments.push(department(main + 1 + rng.below(3) as usize));
            }
            let user_id = 55_000_000 + index as i64 * 13;
            User {
                user_id,
                email: format!(
                    "{}.{}{}@example.com",
                    given_en.to_lowercase(),
                    surname_en.to_lowercase(),
                    index + 1
                ),
                nickname: format!("{surname}{given}{:02}", index + 1),
                family_name: surname.to_string(),
                second_name: given.to_string(),
                full_name: format!("{surname}{given}"),
                gender: 1 + rng.below(2) as u8,
                position: rng.pick::<&str>(POSITIONS),
                enable_flag: if rng.chance(88) { 1 } else { 0 },
                user_mobile: format!("13{:09}", rng.below(1_000_000_000)),
                employee_no: format!("E{:05}", index + 1),
                department_id: departments[0].department_id,
                department_name: departments[0].department_name,
                departments,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_deterministic_and_ids_unique() {
        let a = yida_instances(7, 500, 1_700_000_000_000);
        let b = yida_instances(7, 500, 1_700_000_000_000);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let ids: std::collections::HashSet<_> =
            a.iter().map(|i| i.process_instance_id.clone()).collect();
        assert_eq!(ids.len(), 500);
        assert!(a.windows(2).all(|w| w[0].create_ms >= w[1].create_ms));

        let shops = jushuitan_shops(7);
        assert_eq!(shops.len(), JUSHUITAN_SHOP_COUNT);
        assert!(shops.windows(2).all(|w| w[0].shop_id < w[1].shop_id));
        let users = okki_users(7);
        let nicknames: std::collections::HashSet<_> =
            users.iter().map(|u| u.nickname.clone()).collect();
        assert_eq!(nicknames.len(), OKKI_USER_COUNT);
    }

    #[test]
    fn amounts_have_two_decimals_in_json() {
        for instance in yida_instances(1, 200, 1_700_000_000_000) {
            let text = serde_json::to_string(&instance.data.amount).unwrap();
            let decimals = text.split('.').nth(1).map_or(0, str::len);
            assert!(decimals <= 2, "{text}");
        }
    }
}
