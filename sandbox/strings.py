"""The phone page's text in the three languages of the upstream page's ``lng`` parameter."""

# Chinese text is written with full-width punctuation, as it should be.
# ruff: noqa: RUF001

# Page text per ``lng`` value of the upstream page (docs/upstream.md §4.1): zh is its default.
STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Real-person verification (sandbox)",
        "intro": "This page stands in for the BytePlus verification page. No camera is used.",
        "session": "Session",
        "created": "Created",
        "valid_for": "Link valid for",
        "seconds": "s",
        "pick": "Verify as",
        "selfie": "Or upload a selfie",
        "selfie_help": "A photo without a sandbox face marker becomes a new person who matches "
        "no demo portrait.",
        "complete": "Complete",
        "fail": "Fail",
        "gone_title": "This link has expired or was already used",
        "gone_body": "Ask for a new verification link.",
        "crowd": "Several faces were detected. Only one person can verify.",
        "pick_one": "Choose a face or upload a selfie.",
        "not_image": "The selfie must be a photo.",
    },
    "zh": {
        "title": "真人认证（沙盒）",
        "intro": "此页面代替 BytePlus 认证页面，不会使用摄像头。",
        "session": "会话",
        "created": "创建时间",
        "valid_for": "链接剩余有效时间",
        "seconds": "秒",
        "pick": "认证身份",
        "selfie": "或上传自拍",
        "selfie_help": "没有沙盒人脸标记的照片会成为一个新的人，与任何演示肖像都不匹配。",
        "complete": "完成",
        "fail": "失败",
        "gone_title": "此链接已过期或已被使用",
        "gone_body": "请重新获取认证链接。",
        "crowd": "检测到多张人脸，仅限一人认证。",
        "pick_one": "请选择人脸或上传自拍。",
        "not_image": "自拍必须是照片。",
    },
    "zh-Hant": {
        "title": "真人認證（沙盒）",
        "intro": "此頁面代替 BytePlus 認證頁面，不會使用相機。",
        "session": "會話",
        "created": "建立時間",
        "valid_for": "連結剩餘有效時間",
        "seconds": "秒",
        "pick": "認證身分",
        "selfie": "或上傳自拍",
        "selfie_help": "沒有沙盒人臉標記的照片會成為一個新的人，與任何示範肖像都不相符。",
        "complete": "完成",
        "fail": "失敗",
        "gone_title": "此連結已過期或已被使用",
        "gone_body": "請重新取得認證連結。",
        "crowd": "偵測到多張人臉，僅限一人認證。",
        "pick_one": "請選擇人臉或上傳自拍。",
        "not_image": "自拍必須是照片。",
    },
}
