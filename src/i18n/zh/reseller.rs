//! Chinese for the reseller page (`src/console/reseller.rs`).

/// This page's texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("Resellers only", "仅限分销商"),
    (
        "This section is for resellers. Ask the site's operators if you want to sell.",
        "此区域仅供分销商使用。如需分销，请联系站点运营者。",
    ),
    (
        "Sell credit with redemption codes paid from your balance, or send it straight to a customer.",
        "用从余额支付的兑换码销售额度，或直接转给客户。",
    ),
    ("Your balance", "你的余额"),
    ("Invitees", "受邀用户"),
    ("Transfer balance", "转账余额"),
    (
        "Move part of your balance to a customer's account at once. It cannot be undone.",
        "立即将部分余额转入客户账户，无法撤销。",
    ),
    ("Customer's email", "客户邮箱"),
    ("Send", "发送"),
    ("Sent {amount}.", "已发送 {amount}。"),
    (
        "Emails are partly hidden. A reward is paid once the invitee confirms their email.",
        "邮箱已部分隐藏。受邀用户确认邮箱后发放奖励。",
    ),
    ("Reward", "奖励"),
    ("Pending", "待发放"),
    ("Share your invitation link from the Invitations page.", "在邀请页面分享你的邀请链接。"),
    ("There is no account with that email.", "没有使用该邮箱的账户。"),
    ("You cannot transfer to yourself.", "不能转账给自己。"),
    ("Email: the address of the account to credit.", "邮箱：要入账的账户地址。"),
    ("Amount: more than 0, like 10.00.", "金额：大于 0，例如 10.00。"),
    ("Only resellers transfer balance.", "只有分销商可以转账余额。"),
];
